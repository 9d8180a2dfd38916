"""SQL repositories: the write side of ``domain.ports``, one AsyncSession shared per unit of work.

Bulk writes are single statements: upserts are ``INSERT ... ON CONFLICT DO UPDATE`` of every
row at once, built by ``bulk.bulk_insert`` so that their SQL is the same whatever the number of
rows (one prepared statement each on PostgreSQL; see bulk.py for why that matters). ``IN``
lists are chunked by hand below SQLite's bind-parameter limit.
"""

from __future__ import annotations

import builtins
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Table,
    bindparam,
    case,
    delete,
    distinct,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult, Row, RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from domain.matching import keyword_key
from domain.models import (
    ApiToken,
    Author,
    Comment,
    CommentEvent,
    CommentStatus,
    Group,
    Keyword,
    Match,
    Post,
    Progress,
    Task,
    TaskKind,
    TaskState,
    WorkflowState,
)
from domain.queries import fold_text
from infrastructure.db.aggregates import StatsLedger
from infrastructure.db.bulk import bulk_insert, in_values
from infrastructure.db.tables import (
    ACTIVE_PARSE,
    api_tokens,
    authors,
    comment_events,
    comment_versions,
    comments,
    groups,
    keywords,
    matches,
    posts,
    tasks,
)

IN_CHUNK = 10_000  # values per IN (...) list


def _now() -> datetime:
    return datetime.now(UTC)


def _chunks(values: Sequence[Any], size: int = IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _in(session: AsyncSession, column, values: Sequence[int]) -> ColumnElement[bool]:
    return in_values(session.get_bind().dialect.name, column, values)


def _upsert(session: AsyncSession, table: Table):
    """The dialect's INSERT, which knows ON CONFLICT."""
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table)


def _bulk_insert(session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]]):
    return bulk_insert(session.get_bind().dialect.name, table, rows)


async def _stored_locked(
    session: AsyncSession, table: Table, keys: Iterable[tuple[int, int]], *columns: Any
) -> list[Row[Any]]:
    """``columns`` of the stored rows of ``table`` among ``keys`` ((owner_id, vk_id)), locked
    until the transaction ends, so nobody changes them between this read and the upsert; read
    in vk_id order per wall, one lock order for every writer."""
    by_owner: dict[int, list[int]] = {}
    for owner_id, vk_id in keys:
        by_owner.setdefault(owner_id, []).append(vk_id)
    found: list[Row[Any]] = []
    for owner_id, vk_ids in by_owner.items():
        for chunk in _chunks(sorted(vk_ids)):
            query = (
                select(*columns)
                .where(table.c.owner_id == owner_id, _in(session, table.c.vk_id, chunk))
                .order_by(table.c.vk_id)
                .with_for_update()
            )
            found += (await session.execute(query)).all()
    return found


# --- groups ---------------------------------------------------------------------------------

_GROUP_FIELDS = [c.name for c in groups.columns if c.name != "id"]


def group_from_row(row: RowMapping) -> Group:
    return Group(id=row["id"], **{name: row[name] for name in _GROUP_FIELDS})


class SqlGroupRepository:
    def __init__(self, session: AsyncSession, ledger: StatsLedger) -> None:
        self.session = session
        self.ledger = ledger

    async def get(self, group_id: int) -> Group | None:
        row = (await self.session.execute(select(groups).where(groups.c.id == group_id))).mappings().first()
        return group_from_row(row) if row else None

    async def get_by_vk_id(self, vk_id: int) -> Group | None:
        row = (await self.session.execute(select(groups).where(groups.c.vk_id == vk_id))).mappings().first()
        return group_from_row(row) if row else None

    async def add(self, group: Group) -> Group:
        now = _now()
        group.created_at = group.created_at or now
        group.updated_at = now
        values = {name: getattr(group, name) for name in _GROUP_FIELDS}
        group.id = (await self.session.execute(groups.insert().values(values).returning(groups.c.id))).scalar_one()
        return group

    async def save(self, group: Group) -> None:
        group.updated_at = _now()
        values = {name: getattr(group, name) for name in _GROUP_FIELDS}
        await self.session.execute(update(groups).where(groups.c.id == group.id).values(values))

    async def list(self, *, active: bool | None = None) -> list[Group]:
        query = select(groups).order_by(groups.c.id)
        if active is not None:
            query = query.where(groups.c.active == active)
        return [group_from_row(r) for r in (await self.session.execute(query)).mappings()]

    async def remove(self, group_id: int) -> None:
        # Posts, comments and matches go with it (ON DELETE CASCADE); tasks keep a NULL group.
        # So do its rows of the per-group statistics; authors and keywords are shared, so
        # the group's comments and matches are taken out of theirs first.
        of_group = comments.c.group_id == group_id
        written = (
            select(comments.c.from_id, func.count())
            .where(of_group, comments.c.from_id != 0)
            .group_by(comments.c.from_id)
        )
        for from_id, n in await self.session.execute(written):
            self.ledger.author(from_id, -n)
        found = (
            select(matches.c.keyword_id, func.count(), func.count(distinct(matches.c.comment_id)))
            .select_from(matches.join(comments, comments.c.id == matches.c.comment_id))
            .where(of_group)
            .group_by(matches.c.keyword_id)
        )
        for keyword_id, n, commented in await self.session.execute(found):
            self.ledger.keyword(keyword_id, matches=-n, comments=-commented)
        self.ledger.forget_group(group_id)
        await self.session.execute(delete(groups).where(groups.c.id == group_id))

    async def due_for_monitoring(self, now: datetime) -> builtins.list[Group]:
        query = (
            select(groups)
            .where(
                groups.c.monitor_enabled,
                groups.c.active,
                or_(groups.c.next_run_at.is_(None), groups.c.next_run_at <= now),
            )
            # A group never run is the most overdue: NULLs first on both databases.
            .order_by(groups.c.monitor_priority.desc(), groups.c.next_run_at.asc().nulls_first(), groups.c.id)
        )
        return [group_from_row(r) for r in (await self.session.execute(query)).mappings()]


# --- posts ----------------------------------------------------------------------------------


class SqlPostRepository:
    def __init__(self, session: AsyncSession, ledger: StatsLedger) -> None:
        self.session = session
        self.ledger = ledger

    async def upsert_many(self, group_id: int, items: Sequence[Post]) -> None:
        rows = {
            (p.owner_id, p.vk_id): {
                "group_id": group_id,
                "owner_id": p.owner_id,
                "vk_id": p.vk_id,
                "from_id": p.from_id,
                "text": p.text,
                "published_at": p.published_at,
                "comments_count": p.comments_count,
                "likes": p.likes,
                "reposts": p.reposts,
                "views": p.views,
                "is_pinned": p.is_pinned,
            }
            for p in items
        }
        if not rows:
            return
        # Statistics (posts per group): out with the stored rows' groups, in with the written.
        for (stored_group,) in await _stored_locked(self.session, posts, rows, posts.c.group_id):
            self.ledger.post(stored_group, -1)
        stmt, params = _bulk_insert(self.session, posts, list(rows.values()))
        # comments_synced_count is the collector's bookkeeping: VK data never overwrites it.
        updated = (
            "group_id", "from_id", "text", "published_at", "comments_count", "likes", "reposts", "views", "is_pinned"
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[posts.c.owner_id, posts.c.vk_id],
            set_={name: stmt.excluded[name] for name in updated},
        ).returning(posts.c.group_id)
        for (written_group,) in await self.session.execute(stmt, params):
            self.ledger.post(written_group, +1)

    async def synced_counts(self, owner_id: int) -> dict[int, int]:
        query = select(posts.c.vk_id, posts.c.comments_synced_count).where(
            posts.c.owner_id == owner_id, posts.c.comments_synced_count.is_not(None)
        )
        return dict((await self.session.execute(query)).all())

    async def mark_synced(self, owner_id: int, counts: dict[int, int]) -> None:
        if not counts:
            return
        stmt = (
            update(posts)
            .where(posts.c.owner_id == owner_id, posts.c.vk_id == bindparam("b_vk_id"))
            .values(comments_synced_count=bindparam("b_count"))
        )
        conn = await self.session.connection()
        await conn.execute(stmt, [{"b_vk_id": vk_id, "b_count": n} for vk_id, n in counts.items()])


# --- comments -------------------------------------------------------------------------------


def _count_comment(ledger: StatsLedger, sign: int, row) -> None:
    ledger.comment(
        sign, group_id=row.group_id, published_at=row.published_at, from_id=row.from_id,
        reply=row.thread_vk_id is not None, matches_count=row.matches_count, viewed=row.viewed, archived=row.archived,
    )


_COUNTED = (
    comments.c.group_id, comments.c.published_at, comments.c.from_id, comments.c.thread_vk_id, comments.c.matches_count,
    comments.c.viewed, comments.c.archived,
)
# What an upsert compares a re-read with: the statistics' columns and the history's.
_STORED = (
    comments.c.id, comments.c.owner_id, comments.c.vk_id, *_COUNTED, comments.c.text, comments.c.likes,
    comments.c.created_at, comments.c.edited_at, comments.c.deleted_at, comments.c.reply_to_user,
)


class SqlCommentRepository:
    def __init__(self, session: AsyncSession, ledger: StatsLedger) -> None:
        self.session = session
        self.ledger = ledger

    async def upsert_many(
        self, group_id: int, items: Sequence[Comment], *, matches_counts: Mapping[tuple[int, int], int] | None = None
    ) -> dict[tuple[int, int], int]:
        """Insert or update by (owner_id, vk_id), keeping each comment's history.

        A new comment is inserted with its count from ``matches_counts`` (see the port): the
        collector matched it before, and ``matches_count`` is indexed, so setting it after the
        insert made a second version of every matched comment, with an entry in each index of
        comments (the trigram index's dozens of them too), and left the first one dead. Under
        bench/soak.py that UPDATE was the collection's second most expensive statement, and
        without a vacuum the readers walked the dead entries. A stored comment keeps its count
        (not in the update's SET): the matcher's recount is what changes it.

        What a re-read finds is compared with the stored row read (and locked) for the
        statistics anyway, so history costs no statement per comment: a changed text becomes
        the stored text, its predecessor a ``comment_versions`` row (one INSERT for the batch)
        and ``edited_at`` the time it was seen. VK's ``deleted: true`` placeholder carries an
        empty text and no author: a stored comment keeps its text, author, time and likes and
        is only marked (``deleted_at``: when this was noticed). A comment VK shows again (a
        deletion undone, or one ``mark_vanished`` marked) is not deleted any more; one first
        seen deleted had no text to keep, so what it shows then is no edit.
        """
        unique = {(c.owner_id, c.vk_id): c for c in items}  # ON CONFLICT may touch a row once
        if not unique:
            return {}
        post_ids = await self._post_ids({(c.owner_id, c.post_vk_id) for c in unique.values()})
        counts = matches_counts or {}
        now = _now()
        # Statistics: out with what the stored rows counted, in with what they count now.
        # Locked, so nobody changes them between this read and the upsert.
        stored: dict[tuple[int, int], Any] = {}
        for row in await _stored_locked(self.session, comments, unique, *_STORED):
            _count_comment(self.ledger, -1, row)
            stored[(row.owner_id, row.vk_id)] = row
        rows = []
        versions = []  # the texts edits replaced
        for key, c in unique.items():
            post_id = post_ids.get((c.owner_id, c.post_vk_id))
            if post_id is None:
                raise LookupError(f"post {c.owner_id}_{c.post_vk_id} is not stored: store posts before their comments")
            before = stored.get(key)
            text, from_id, published_at, likes = c.text, c.from_id, c.published_at, c.likes
            reply_to_user = c.reply_to_user
            edited_at = before.edited_at if before is not None else None
            deleted_at = None
            if c.deleted:
                if before is not None:  # a deletion is not an edit: what was stored stays
                    text, from_id, published_at, likes = before.text, before.from_id, before.published_at, before.likes
                    reply_to_user = before.reply_to_user
                deleted_at = before.deleted_at if before is not None and before.deleted_at is not None else now
            elif before is not None and before.text != c.text and not (before.deleted_at and not before.text):
                # (A comment first seen deleted has VK's empty placeholder stored: no text to keep.)
                seen_at = before.edited_at or before.created_at
                versions.append({"comment_id": before.id, "text": before.text, "seen_at": seen_at})
                edited_at = now
            rows.append(
                {
                    "group_id": group_id,
                    "post_id": post_id,
                    "owner_id": c.owner_id,
                    "vk_id": c.vk_id,
                    "post_vk_id": c.post_vk_id,
                    "thread_vk_id": c.thread_vk_id,
                    "parent_vk_id": c.parent_vk_id,
                    "reply_to_user": reply_to_user,
                    "from_id": from_id,
                    "text": text,
                    "text_folded": fold_text(text),  # what the ``text`` filter compares
                    "published_at": published_at,
                    "likes": likes,
                    "deleted": c.deleted,
                    "created_at": now,
                    "edited_at": edited_at,
                    "deleted_at": deleted_at,
                    # Only an insert writes it (not in ``updated`` below).
                    "matches_count": before.matches_count if before is not None else counts.get(key, 0),
                }
            )
        stmt, params = _bulk_insert(self.session, comments, rows)
        # viewed, archived and matches_count belong to the users and the matcher, created_at to
        # the first collection: kept.
        updated = (
            "group_id", "post_id", "post_vk_id", "thread_vk_id", "parent_vk_id", "reply_to_user",
            "from_id", "text", "text_folded", "published_at", "likes", "deleted", "edited_at", "deleted_at",
        )
        # A stored comment is written only when a re-read changed it: a full re-parse finds most
        # comments as they were, and rewriting each (a new version, an entry in every index of
        # comments, the trigram index included) cost the readers as much as storing it anew.
        # The rows left alone were read and locked above: they count as they counted.
        stmt = stmt.on_conflict_do_update(
            index_elements=[comments.c.owner_id, comments.c.vk_id],
            set_={name: stmt.excluded[name] for name in updated},
            where=or_(*(comments.c[name].is_distinct_from(stmt.excluded[name]) for name in updated)),
        ).returning(comments.c.owner_id, comments.c.vk_id, comments.c.id, *_COUNTED)
        ids = {}
        moved = []  # comments whose time changed: their matches carry it too
        for row in await self.session.execute(stmt, params):
            key = (row.owner_id, row.vk_id)
            ids[key] = row.id
            _count_comment(self.ledger, +1, row)
            before = stored.get(key)
            if before is not None and before.published_at != row.published_at:
                moved.append({"b_id": row.id, "b_published_at": row.published_at})
        for key, before in stored.items():
            if key not in ids:  # unchanged, not written
                ids[key] = before.id
                _count_comment(self.ledger, +1, before)
        if versions:
            await self.session.execute(*_bulk_insert(self.session, comment_versions, versions))
        if moved:
            conn = await self.session.connection()
            await conn.execute(
                update(matches).where(matches.c.comment_id == bindparam("b_id"))
                .values(published_at=bindparam("b_published_at", type_=matches.c.published_at.type)),
                moved,
            )
        return ids

    async def mark_vanished(
        self, owner_id: int, post_vk_id: int, present: Collection[int], *, now: datetime
    ) -> list[int]:
        """Mark deleted the post's comments that are not deleted yet and not ``present``. The
        post's live comments are read (its rows, by the post's index), the difference taken
        here, and only those updated: ``present`` may hold thousands of ids, and a ``NOT IN``
        of them is no statement SQLite or a prepared PostgreSQL plan does well."""
        post = select(posts.c.id).where(posts.c.owner_id == owner_id, posts.c.vk_id == post_vk_id).scalar_subquery()
        live = (
            select(comments.c.id, comments.c.vk_id)
            .where(comments.c.post_id == post, comments.c.deleted_at.is_(None))
            .order_by(comments.c.id)
        )
        keep = set(present)
        gone = [row_id for row_id, vk_id in await self.session.execute(live) if vk_id not in keep]
        marked: list[int] = []
        for chunk in _chunks(gone):
            stmt = (
                update(comments)
                .where(_in(self.session, comments.c.id, chunk), comments.c.deleted_at.is_(None))
                .values(deleted=True, deleted_at=now)
                .returning(comments.c.id)
            )
            marked += (await self.session.execute(stmt)).scalars()
        return sorted(marked)

    async def _post_ids(self, keys: set[tuple[int, int]]) -> dict[tuple[int, int], int]:
        by_owner: dict[int, list[int]] = {}
        for owner_id, vk_id in keys:
            by_owner.setdefault(owner_id, []).append(vk_id)
        found: dict[tuple[int, int], int] = {}
        for owner_id, vk_ids in by_owner.items():
            for chunk in _chunks(sorted(vk_ids)):
                query = select(posts.c.vk_id, posts.c.id).where(
                    posts.c.owner_id == owner_id, _in(self.session, posts.c.vk_id, chunk)
                )
                for vk_id, row_id in await self.session.execute(query):
                    found[(owner_id, vk_id)] = row_id
        return found

    async def count(self, *, group_id: int | None = None) -> int:
        query = select(func.count()).select_from(comments)
        if group_id is not None:
            query = query.where(comments.c.group_id == group_id)
        return (await self.session.execute(query)).scalar_one()

    async def set_state(self, ids: Sequence[int], *, viewed: bool | None, archived: bool | None) -> list[int]:
        """Set the review flags of many comments at once; returns the ids that exist."""
        values = {k: v for k, v in (("viewed", viewed), ("archived", archived)) if v is not None}
        found: list[int] = []
        for chunk in _chunks(sorted(set(ids))):
            # Statistics (review states per day and group): out with the flags before, in with
            # the flags after; locked in between.
            stored = (
                select(*_COUNTED)
                .where(_in(self.session, comments.c.id, chunk))
                .order_by(comments.c.id)
                .with_for_update()
            )
            for row in await self.session.execute(stored):
                _count_comment(self.ledger, -1, row)
            stmt = (
                update(comments).where(_in(self.session, comments.c.id, chunk)).values(**values)
                .returning(comments.c.id, *_COUNTED)
            )
            for row in await self.session.execute(stmt):
                found.append(row.id)
                _count_comment(self.ledger, +1, row)
        return found

    async def workflow_states(self, ids: Sequence[int]) -> list[WorkflowState]:
        c = comments.c
        found: list[WorkflowState] = []
        for chunk in _chunks(sorted(set(ids))):
            query = (
                select(c.id, c.viewed, c.archived, c.status, c.assignee, c.tags, c.note)
                .where(_in(self.session, c.id, chunk))
                .order_by(c.id)
                .with_for_update()
            )
            for row in await self.session.execute(query):
                found.append(WorkflowState(
                    id=row.id, viewed=row.viewed, archived=row.archived, status=CommentStatus(row.status),
                    assignee=row.assignee, tags=tuple(row.tags), note=row.note,
                ))
        return found

    async def set_workflow(self, states: Sequence[WorkflowState]) -> None:
        # Comments changed alike (the usual bulk change: one status for all) share a statement.
        alike: dict[tuple[Any, ...], list[int]] = {}
        for state in states:
            key = (state.status.value, state.assignee, tuple(sorted(set(state.tags))), state.note)
            alike.setdefault(key, []).append(state.id)
        for (status, assignee, tags, note), ids in alike.items():
            for chunk in _chunks(sorted(ids)):
                await self.session.execute(
                    update(comments)
                    .where(_in(self.session, comments.c.id, chunk))
                    .values(status=status, assignee=assignee, tags=list(tags), note=note)
                )

    async def add_events(self, events: Sequence[CommentEvent]) -> None:
        rows = [
            {
                "comment_id": e.comment_id, "at": e.at, "actor": e.actor, "field": e.field,
                "old_value": e.old_value, "new_value": e.new_value,
            }
            for e in events
        ]
        for chunk in _chunks(rows, 1000):
            stmt, params = _bulk_insert(self.session, comment_events, chunk)
            await self.session.execute(stmt, params)

    async def iter_texts(
        self, *, group_ids: Sequence[int] | None, after_id: int, limit: int
    ) -> list[tuple[int, str]]:
        query = (
            select(comments.c.id, comments.c.text).where(comments.c.id > after_id).order_by(comments.c.id).limit(limit)
        )
        if group_ids is not None:
            query = query.where(_in(self.session, comments.c.group_id, list(group_ids)))
        return [tuple(row) for row in await self.session.execute(query)]


# --- authors --------------------------------------------------------------------------------


_AUTHOR_FIELDS = ("name", "screen_name", "photo_url")  # what VK says of an author


class SqlAuthorRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def upsert_many(self, items: Iterable[Author]) -> None:
        """Stores new authors and the changes of known ones; ``updated_at`` is when a row last
        changed. Authors already stored as they are are not written at all.

        Authors are shared by every community, and a batch of comments names hundreds of them,
        nearly all known and unchanged. Upserting every one (``updated_at`` always differed)
        wrote a new version of each and locked it until the batch's transaction ended, so two
        collections at once waited on each other's authors: under bench/soak.py (two parses)
        this upsert was the database's most expensive statement, 0.7 s a call, nearly all of it
        waiting for the other parse's commit. Now the stored rows are read first, without a
        lock, and only the new and the changed ones go to the upsert (whose ``WHERE`` also
        leaves a row that another writer made equal meanwhile untouched).
        """
        now = _now()
        rows = {
            a.vk_id: {
                "vk_id": a.vk_id, "name": a.name, "screen_name": a.screen_name, "photo_url": a.photo_url,
                "updated_at": now,
            }
            for a in items
        }
        if not rows:
            return
        for chunk in _chunks(sorted(rows)):
            stored = select(authors.c.vk_id, *(authors.c[name] for name in _AUTHOR_FIELDS)).where(
                _in(self.session, authors.c.vk_id, chunk)
            )
            for row in await self.session.execute(stored):
                wanted = rows[row.vk_id]
                if all(row._mapping[name] == wanted[name] for name in _AUTHOR_FIELDS):
                    del rows[row.vk_id]
        if not rows:
            return
        # Concurrent collections upsert overlapping sets: rows taken in one global order cannot
        # deadlock each other.
        stmt, params = _bulk_insert(self.session, authors, [rows[k] for k in sorted(rows)])
        stmt = stmt.on_conflict_do_update(
            index_elements=[authors.c.vk_id],
            set_={name: stmt.excluded[name] for name in (*_AUTHOR_FIELDS, "updated_at")},
            where=or_(*(authors.c[name].is_distinct_from(stmt.excluded[name]) for name in _AUTHOR_FIELDS)),
        )
        await self.session.execute(stmt, params)

    async def missing(self, vk_ids: Iterable[int]) -> set[int]:
        wanted = sorted(set(vk_ids))
        known: set[int] = set()
        for chunk in _chunks(wanted):
            query = select(authors.c.vk_id).where(_in(self.session, authors.c.vk_id, chunk))
            known.update((await self.session.execute(query)).scalars())
        return set(wanted) - known


# --- keywords -------------------------------------------------------------------------------


def keyword_from_row(row: RowMapping | Mapping[str, Any]) -> Keyword:
    return Keyword(
        id=row["id"],
        word=row["word"],
        category=row["category"],
        active=row["active"],
        case_sensitive=row["case_sensitive"],
        whole_word=row["whole_word"],
        morphology=row["morphology"],
        created_at=row["created_at"],
    )


class SqlKeywordRepository:
    """``list_active`` is the domain port; the rest serves keyword management."""

    def __init__(self, session: AsyncSession, ledger: StatsLedger) -> None:
        self.session = session
        self.ledger = ledger

    async def list_active(self) -> list[Keyword]:
        return await self.list(active=True)

    async def list(self, *, active: bool | None = None) -> list[Keyword]:
        query = select(keywords).order_by(keywords.c.id)
        if active is not None:
            query = query.where(keywords.c.active == active)
        return [keyword_from_row(r) for r in (await self.session.execute(query)).mappings()]

    async def get(self, keyword_id: int) -> Keyword | None:
        row = (await self.session.execute(select(keywords).where(keywords.c.id == keyword_id))).mappings().first()
        return keyword_from_row(row) if row else None

    async def get_by_word(self, word: str) -> Keyword | None:
        """The keyword a new ``word`` would duplicate (case-insensitive, "ё" as "е")."""
        query = select(keywords).where(keywords.c.word_key == keyword_key(word))
        row = (await self.session.execute(query)).mappings().first()
        return keyword_from_row(row) if row else None

    async def add(self, keyword: Keyword) -> Keyword | None:
        """Store ``keyword`` (its ``id`` is ignored); returns it with the new id, or None when
        a keyword with the same case-insensitive key exists (also one a concurrent
        transaction just committed, which a look-up before the insert could not see)."""
        now = _now()
        values = {**self._values(keyword), "created_at": now, "updated_at": now}
        stmt = (
            _upsert(self.session, keywords).values(values).on_conflict_do_nothing(index_elements=[keywords.c.word_key])
        )
        new_id = (await self.session.execute(stmt.returning(keywords.c.id))).scalar_one_or_none()
        if new_id is None:
            return None
        return Keyword(
            id=new_id,
            **{
                k: getattr(keyword, k)
                for k in ("word", "category", "active", "case_sensitive", "whole_word", "morphology")
            },
            created_at=now,
        )

    async def save(self, keyword: Keyword) -> None:
        values = {**self._values(keyword), "updated_at": _now()}
        await self.session.execute(update(keywords).where(keywords.c.id == keyword.id).values(values))

    async def remove(self, keyword_id: int) -> None:
        # Its matches go with it (ON DELETE CASCADE): first take them out of the comments' counts.
        of_keyword = (matches.c.comment_id == comments.c.id) & (matches.c.keyword_id == keyword_id)
        lost = select(func.count()).select_from(matches).where(of_keyword).scalar_subquery()
        affected = select(matches.c.comment_id).where(matches.c.keyword_id == keyword_id)
        stmt = (
            update(comments)
            .where(comments.c.id.in_(affected))
            .values(matches_count=comments.c.matches_count - lost)
            .returning(comments.c.group_id, comments.c.published_at, comments.c.matches_count, lost.label("lost"))
        )
        for row in (await self.session.execute(stmt)).all():
            self.ledger.matches_count(
                group_id=row.group_id, published_at=row.published_at,
                before=row.matches_count + row.lost, after=row.matches_count,
            )
        self.ledger.forget_keyword(keyword_id)  # its row goes with it (ON DELETE CASCADE)
        await self.session.execute(delete(keywords).where(keywords.c.id == keyword_id))

    @staticmethod
    def _values(keyword: Keyword) -> dict[str, Any]:
        return {
            "word": keyword.word,
            "word_key": keyword_key(keyword.word),
            "category": keyword.category,
            "active": keyword.active,
            "case_sensitive": keyword.case_sensitive,
            "whole_word": keyword.whole_word,
            "morphology": keyword.morphology,
        }


# --- matches --------------------------------------------------------------------------------


def _matches_count_of_comment():
    return (
        select(func.count())
        .select_from(matches)
        .where(matches.c.comment_id == comments.c.id)
        .scalar_subquery()
    )


class SqlMatchRepository:
    def __init__(self, session: AsyncSession, ledger: StatsLedger) -> None:
        self.session = session
        self.ledger = ledger

    async def replace_for_comments(
        self, comment_ids: Sequence[int], items: Sequence[Match], *, keyword_ids: Sequence[int] | None = None
    ) -> None:
        ids = sorted(set(comment_ids))
        if not ids:
            return
        # Replacements of the same comments' matches take turns. A DELETE sees committed rows
        # only, so two at once (concurrent analyze runs) each inserted what the other was also
        # inserting, and the primary key refused the second; overwriting instead deadlocks,
        # one DELETE waiting on rows the other's INSERT needs. Locking the comments first, in
        # id order, makes the second wait until the first commits, then replace what it wrote.
        # (SQLite renders no FOR UPDATE: its writers take turns anyway, BEGIN IMMEDIATE.)
        before: dict[int, Any] = {}  # the locked comments as the statistics counted them
        for chunk in _chunks(ids):
            locked = (
                select(comments.c.id, comments.c.group_id, comments.c.published_at, comments.c.matches_count)
                .where(_in(self.session, comments.c.id, chunk))
                .order_by(comments.c.id)
                .with_for_update()
            )
            before.update((row.id, row) for row in await self.session.execute(locked))
        scope = set(ids)
        keyword_scope = set(keyword_ids) if keyword_ids is not None else None
        # Per keyword: matches and matched comments, minus the deleted ones, plus the inserted.
        old_pairs: dict[tuple[int, int], int] = {}
        for chunk in _chunks(ids):
            stmt = delete(matches).where(_in(self.session, matches.c.comment_id, chunk))
            if keyword_scope is not None:
                stmt = stmt.where(_in(self.session, matches.c.keyword_id, sorted(keyword_scope)))
            for comment_id, keyword_id in await self.session.execute(
                stmt.returning(matches.c.comment_id, matches.c.keyword_id)
            ):
                old_pairs[(comment_id, keyword_id)] = old_pairs.get((comment_id, keyword_id), 0) + 1
        # One row per primary key; matches outside the replaced scope would collide with kept rows.
        rows = {
            (m.comment_id, m.keyword_id, m.start): {
                "comment_id": m.comment_id,
                "keyword_id": m.keyword_id,
                "matched_text": m.matched_text,
                "start_pos": m.start,
                "end_pos": m.end,
                "snippet": m.snippet,
                # None for a comment that does not exist: refused like its foreign key would be.
                "published_at": before[m.comment_id].published_at if m.comment_id in before else None,
            }
            for m in items
            if m.comment_id in scope and (keyword_scope is None or m.keyword_id in keyword_scope)
        }
        if rows:
            await self.session.execute(*_bulk_insert(self.session, matches, list(rows.values())))
        new_pairs: dict[tuple[int, int], int] = {}
        for comment_id, keyword_id, _start in rows:
            new_pairs[(comment_id, keyword_id)] = new_pairs.get((comment_id, keyword_id), 0) + 1
        # A (comment, keyword) pair is one comment the keyword matched, n times.
        for (_comment, keyword_id), n in old_pairs.items():
            self.ledger.keyword(keyword_id, matches=-n, comments=-1)
        for (_comment, keyword_id), n in new_pairs.items():
            self.ledger.keyword(keyword_id, matches=n, comments=1)
        # Only the comments whose count changes are written, and only those that lost or gained
        # a match are recounted. Writing all of them (most new comments match nothing: 0 stays
        # 0) made a second version of every comment the collector stored and of every comment
        # an ANALYZE task re-matched: matches_count is indexed, so no update is HOT, and each
        # wrote an entry into every index of comments, the trigram index included; without a
        # vacuum between, the table and its indexes doubled (bench/soak.py's readers then
        # walked the dead entries).
        touched = sorted({comment_id for comment_id, _ in old_pairs} | {comment_id for comment_id, _, _ in rows})
        for chunk in _chunks(touched):
            counted = _matches_count_of_comment()
            recount = (
                update(comments)
                .where(_in(self.session, comments.c.id, chunk), comments.c.matches_count != counted)
                .values(matches_count=counted)
                .returning(comments.c.id, comments.c.matches_count)
            )
            for comment_id, after in (await self.session.execute(recount)).all():
                old = before[comment_id]
                self.ledger.matches_count(
                    group_id=old.group_id, published_at=old.published_at, before=old.matches_count, after=after
                )


# --- tasks ----------------------------------------------------------------------------------


def task_from_row(row: RowMapping) -> Task:
    return Task(
        id=row["id"],
        kind=TaskKind(row["kind"]),
        state=TaskState(row["state"]),
        priority=row["priority"],
        group_id=row["group_id"],
        params=row["params"] or {},
        progress=Progress(row["progress_done"], row["progress_total"], row["progress_message"]),
        attempts=row["attempts"],
        cancel_requested=row["cancel_requested"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        error=row["error"],
        result=row["result"],
        updated_at=row["updated_at"],
        worker_id=row["worker_id"],
        heartbeat_at=row["heartbeat_at"],
        progress_at=row["progress_at"],
        stalled_at=row["stalled_at"],
        stalls=row["stalls"],
        waiting_until=row["waiting_until"],
        waits=row["waits"],
    )


_ACTIVE = (TaskState.QUEUED.value, TaskState.RUNNING.value)


def _task_values(task: Task) -> dict[str, Any]:
    # The lease columns are left out on purpose: only claim/heartbeat/finish move them, so a
    # save from a stale copy of the task can never push a heartbeat back or steal a lease.
    return {
        "kind": task.kind.value,
        "state": task.state.value,
        "priority": task.priority,
        "group_id": task.group_id,
        "params": task.params,
        "progress_done": task.progress.done,
        "progress_total": task.progress.total,
        "progress_message": task.progress.message,
        "attempts": task.attempts,
        "cancel_requested": task.cancel_requested,
        "created_at": task.created_at or _now(),
        "started_at": task.started_at,
        "finished_at": task.finished_at,
        "error": task.error,
        "result": task.result,
        "updated_at": _now(),
    }


class SqlTaskRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, task: Task) -> Task:
        values = _task_values(task)
        task.created_at, task.updated_at = values["created_at"], values["updated_at"]
        task.id = (await self.session.execute(tasks.insert().values(values).returning(tasks.c.id))).scalar_one()
        return task

    async def add_parse(self, task: Task) -> Task | None:
        assert task.kind is TaskKind.PARSE and task.state in (TaskState.QUEUED, TaskState.RUNNING)
        values = _task_values(task)
        stmt = (
            _upsert(self.session, tasks)
            .values(values)
            .on_conflict_do_nothing(index_elements=[tasks.c.group_id], index_where=text(ACTIVE_PARSE))
            .returning(tasks.c.id)
        )
        task_id = (await self.session.execute(stmt)).scalar_one_or_none()
        if task_id is None:
            return None
        task.id, task.created_at, task.updated_at = task_id, values["created_at"], values["updated_at"]
        return task

    async def get(self, task_id: int) -> Task | None:
        row = (await self.session.execute(select(tasks).where(tasks.c.id == task_id))).mappings().first()
        return task_from_row(row) if row else None

    async def save(self, task: Task) -> None:
        values = _task_values(task)
        task.updated_at = values["updated_at"]
        await self.session.execute(update(tasks).where(tasks.c.id == task.id).values(values))

    async def find_active(self, kind: TaskKind, group_id: int) -> Task | None:
        query = (
            select(tasks)
            .where(
                tasks.c.group_id == group_id,
                tasks.c.kind == kind.value,
                tasks.c.state.in_([TaskState.QUEUED.value, TaskState.RUNNING.value]),
            )
            .order_by(tasks.c.id)
            .limit(1)
        )
        row = (await self.session.execute(query)).mappings().first()
        return task_from_row(row) if row else None

    async def list(
        self, *, states: Sequence[TaskState] | None = None, kinds: Sequence[TaskKind] | None = None, limit: int = 100
    ) -> list[Task]:
        query = select(tasks).order_by(tasks.c.id.desc()).limit(limit)
        if states is not None:
            query = query.where(tasks.c.state.in_([s.value for s in states]))
        if kinds is not None:
            query = query.where(tasks.c.kind.in_([k.value for k in kinds]))
        return [task_from_row(r) for r in (await self.session.execute(query)).mappings()]

    # The lease: every change below is one conditional UPDATE, so two runners racing for one
    # task (or a runner racing a cancel) are decided by the database, not by who read first.

    async def claim(self, task_id: int, *, worker_id: str, now: datetime, stale_before: datetime) -> Task | None:
        free = or_(
            (tasks.c.state == TaskState.QUEUED.value)
            & or_(tasks.c.waiting_until.is_(None), tasks.c.waiting_until <= now),
            (tasks.c.state == TaskState.RUNNING.value)
            & or_(tasks.c.heartbeat_at.is_(None), tasks.c.heartbeat_at < stale_before, tasks.c.worker_id == worker_id),
        )
        stmt = (
            update(tasks)
            .where(tasks.c.id == task_id, free)
            .values(
                state=TaskState.RUNNING.value,
                # A run resumed after a wait for VK is not a new attempt.
                attempts=tasks.c.attempts + case((tasks.c.waiting_until.is_(None), 1), else_=0),
                waiting_until=None,
                started_at=func.coalesce(tasks.c.started_at, now),
                error=None,
                worker_id=worker_id,
                heartbeat_at=now,
                progress_at=now,  # a new runner gets the whole stall timeout to make progress
                updated_at=now,
            )
            .returning(*tasks.c)
        )
        row = (await self.session.execute(stmt)).mappings().first()
        return task_from_row(row) if row else None

    async def heartbeat(
        self, task_id: int, *, worker_id: str, now: datetime, progress: Progress | None = None
    ) -> Task | None:
        values: dict[str, Any] = {"heartbeat_at": now}
        if progress is not None:
            values |= {
                "progress_done": progress.done,
                "progress_total": progress.total,
                "progress_message": progress.message,
                "updated_at": now,
                "progress_at": now,
                "stalled_at": None,
            }
        stmt = (
            update(tasks)
            .where(tasks.c.id == task_id, tasks.c.state == TaskState.RUNNING.value, tasks.c.worker_id == worker_id)
            .values(**values)
            .returning(*tasks.c)
        )
        row = (await self.session.execute(stmt)).mappings().first()
        return task_from_row(row) if row else None

    async def finish(
        self,
        task_id: int,
        *,
        worker_id: str | None,
        state: TaskState,
        now: datetime,
        error: str | None = None,
        result: dict | None = None,
        progress: Progress | None = None,
    ) -> Task | None:
        conditions = [tasks.c.id == task_id, tasks.c.state.in_(_ACTIVE)]
        if worker_id is not None:
            conditions.append(tasks.c.worker_id == worker_id)
        values: dict[str, Any] = {
            "state": state.value, "finished_at": now, "updated_at": now, "error": error, "result": result,
            "heartbeat_at": None, "waiting_until": None,
        }
        if progress is not None:
            values |= {
                "progress_done": progress.done,
                "progress_total": progress.total,
                "progress_message": progress.message,
            }
        stmt = update(tasks).where(*conditions).values(**values).returning(*tasks.c)
        row = (await self.session.execute(stmt)).mappings().first()
        return task_from_row(row) if row else None

    async def wait(
        self, task_id: int, *, worker_id: str, now: datetime, until: datetime, progress: Progress
    ) -> Task | None:
        stmt = (
            update(tasks)
            .where(
                tasks.c.id == task_id,
                tasks.c.state == TaskState.RUNNING.value,
                tasks.c.worker_id == worker_id,
                tasks.c.cancel_requested.is_(False),
            )
            .values(
                state=TaskState.QUEUED.value,
                waiting_until=until,
                waits=tasks.c.waits + 1,
                worker_id=None,
                heartbeat_at=None,
                progress_done=progress.done,
                progress_total=progress.total,
                progress_message=progress.message,
                progress_at=now,
                stalled_at=None,
                updated_at=now,
            )
            .returning(*tasks.c)
        )
        row = (await self.session.execute(stmt)).mappings().first()
        return task_from_row(row) if row else None

    async def release(self, task_id: int, *, worker_id: str) -> None:
        stmt = (
            update(tasks)
            .where(tasks.c.id == task_id, tasks.c.state == TaskState.RUNNING.value, tasks.c.worker_id == worker_id)
            .values(heartbeat_at=None)
        )
        await self.session.execute(stmt)

    async def request_cancel(self, task_id: int, *, now: datetime) -> Task | None:
        queued = tasks.c.state == TaskState.QUEUED.value
        stmt = (
            update(tasks)
            .where(tasks.c.id == task_id, tasks.c.state.in_(_ACTIVE))
            .values(
                cancel_requested=True,
                state=case((queued, TaskState.CANCELLED.value), else_=tasks.c.state),
                finished_at=case((queued, now), else_=tasks.c.finished_at),
                waiting_until=None,
                updated_at=now,
            )
            .returning(*tasks.c)
        )
        row = (await self.session.execute(stmt)).mappings().first()
        return task_from_row(row) if row else None

    async def list_stalled(
        self, *, progress_before: datetime, stale_before: datetime, limit: int = 100
    ) -> builtins.list[Task]:
        query = (
            select(tasks)
            .where(
                tasks.c.state == TaskState.RUNNING.value,
                tasks.c.heartbeat_at >= stale_before,  # a live runner (dead ones are orphans)
                tasks.c.progress_at < progress_before,
            )
            .order_by(tasks.c.id)
            .limit(limit)
        )
        return [task_from_row(r) for r in (await self.session.execute(query)).mappings()]

    async def mark_stalled(self, task_id: int, *, worker_id: str | None, now: datetime) -> Task | None:
        stmt = (
            update(tasks)
            .where(tasks.c.id == task_id, tasks.c.state == TaskState.RUNNING.value, tasks.c.worker_id == worker_id)
            .values(stalled_at=now, stalls=tasks.c.stalls + 1, worker_id=None, heartbeat_at=None, updated_at=now)
            .returning(*tasks.c)
        )
        row = (await self.session.execute(stmt)).mappings().first()
        return task_from_row(row) if row else None

    async def list_orphaned(
        self, *, stale_before: datetime, queued_before: datetime, limit: int = 1000
    ) -> builtins.list[Task]:
        query = (
            select(tasks)
            .where(
                or_(
                    (tasks.c.state == TaskState.RUNNING.value)
                    & or_(tasks.c.heartbeat_at.is_(None), tasks.c.heartbeat_at < stale_before),
                    (tasks.c.state == TaskState.QUEUED.value)
                    & (tasks.c.created_at < queued_before)
                    # A task waiting for VK has a deferred job: re-offered once its time is past
                    # by as long (in case a Redis restart lost that job), never before.
                    & or_(tasks.c.waiting_until.is_(None), tasks.c.waiting_until < queued_before),
                )
            )
            .order_by(tasks.c.priority.desc(), tasks.c.id)
            .limit(limit)
        )
        return [task_from_row(r) for r in (await self.session.execute(query)).mappings()]


# --- API tokens -----------------------------------------------------------------------------


def token_from_row(row: RowMapping | Mapping[str, Any]) -> ApiToken:
    return ApiToken(**dict(row))


class SqlApiTokenRepository:
    """``domain.ports.ApiTokenRepository``."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, *, name: str, role: str, token_hash: str) -> ApiToken:
        values = {"name": name, "role": role, "token_hash": token_hash, "created_at": _now()}
        row = (await self.session.execute(api_tokens.insert().values(values).returning(*api_tokens.c))).mappings().one()
        return token_from_row(row)

    async def find_by_hash(self, token_hash: str) -> ApiToken | None:
        query = select(api_tokens).where(api_tokens.c.token_hash == token_hash)
        row = (await self.session.execute(query)).mappings().first()
        return token_from_row(row) if row else None

    async def list(self) -> list[ApiToken]:
        rows = (await self.session.execute(select(api_tokens).order_by(api_tokens.c.id))).mappings()
        return [token_from_row(r) for r in rows]

    async def revoke(self, token_id: int) -> bool:
        """False when there is no such live token."""
        stmt = (
            update(api_tokens)
            .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=_now())
        )
        # An UPDATE's result is a CursorResult, which has the rowcount; execute() is typed for every statement.
        result = cast(CursorResult[Any], await self.session.execute(stmt))
        return result.rowcount == 1

    async def touch(self, token_id: int, when: datetime | None = None) -> None:
        await self.session.execute(
            update(api_tokens).where(api_tokens.c.id == token_id).values(last_used_at=when or _now())
        )
