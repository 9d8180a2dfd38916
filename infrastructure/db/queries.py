"""The read model (``domain.queries.ReadModel``) over SQL: keyset pages and batched look-ups.

Pages never use OFFSET: a cursor is a row's (sort key, id), and a page starts strictly after
it in the requested order (``after``) or ends strictly before it (``before``: read in the
reverse order, then turned around), so rows inserted meanwhile neither shift nor repeat
anything. Every method opens its own short session because dataloaders call them concurrently.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cache, partial
from operator import itemgetter
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Select,
    Table,
    and_,
    bindparam,
    distinct,
    exists,
    false,
    func,
    or_,
    select,
)
from sqlalchemy.engine import Result, RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from domain import declaration
from domain.bounded import BoundedDict
from domain.declaration import view_of
from domain.errors import InvalidInput
from domain.matching import keyword_key
from domain.models import ApiToken, Author, CommentEvent, DeliveryState, Group, Keyword, Match, Task
from domain.queries import (
    MAX_PAGE,
    AlertDeliveryHealth,
    CommentFilter,
    CommentOrder,
    CommentSort,
    CommentVersion,
    CommentView,
    DeliveryFilter,
    DeliveryView,
    Page,
    PostView,
    Projection,
    SortDirection,
    Stats,
    StatsWindow,
    TaskFilter,
)
from domain.rules import QueryCompiler, QueryMatcher, RuleRef, RuleSet, parse, rule_key
from infrastructure.db.alerts import delivery_from_row, delivery_query
from infrastructure.db.bulk import in_values
from infrastructure.db.compiled import DriverStatements, pooled
from infrastructure.db.counts import aggregated_count, countable
from infrastructure.db.faults import raise_if_unavailable
from infrastructure.db.filters import LIKE_ESCAPE, comment_conditions, in_texts, like_pattern, narrowing_condition
from infrastructure.db.projection import Projector, Unprojectable
from infrastructure.db.repositories import group_from_row, keyword_from_row, task_from_row, token_from_row
from infrastructure.db.rules import rule_compiler
from infrastructure.db.stats import read_stats
from infrastructure.db.tables import (
    alert_deliveries,
    api_tokens,
    authors,
    comment_events,
    comment_versions,
    comments,
    groups,
    keywords,
    matches,
    posts,
    rule_matches,
    rules,
    stats_keywords,
    tasks,
)
from infrastructure.morphology import get_lemmatizer

T = TypeVar("T")
K = TypeVar("K")

# --- cursors --------------------------------------------------------------------------------


def encode_cursor(key: Any, row_id: int) -> str:
    """``[key, id]`` as compact JSON in URL-safe base64 without padding (a time as ISO 8601)."""
    if type(row_id) is int and type(key) in (datetime, int):
        # A page makes one per row: spelled out, as json.dumps spells them (an ISO 8601 time
        # has nothing JSON escapes).
        text = f'["{key.isoformat()}",{row_id}]' if type(key) is datetime else f"[{key},{row_id}]"
        raw = text.encode()
    else:
        if isinstance(key, datetime):
            key = key.isoformat()
        raw = json.dumps([key, row_id], separators=(",", ":")).encode()
    # base64.urlsafe_b64encode, without its two wrappers' cost (a page makes a hundred)
    return binascii.b2a_base64(raw, newline=False).translate(_URL_SAFE).rstrip(b"=").decode()


_URL_SAFE = bytes.maketrans(b"+/", b"-_")


MAX_CURSOR_LENGTH = 200  # ours stay under 80 characters


def decode_cursor(cursor: str, key_type: type, *, key_bits: int = 64, field: str = "after") -> tuple[Any, int]:
    """(sort key, id) from a cursor made by ``encode_cursor`` for the same order.

    Cursors come back from clients, so anything ``encode_cursor`` cannot have made is an
    invalid cursor, checked here before it reaches SQL: ids and integer keys past what their
    column holds (``key_bits``: 32 for PostgreSQL's INTEGER), and times that have no UTC
    equivalent (year 1 at +14:00) — the drivers would fail on those with overflow errors.
    """
    try:
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key, row_id = json.loads(raw)
        if not _fits(row_id, 64):
            raise ValueError("id")
        if key_type is datetime:
            key = datetime.fromisoformat(key)
            if key.tzinfo is None:
                raise ValueError("naive time")
            key = key.astimezone(UTC)
        elif key_type is int:
            if not _fits(key, key_bits):
                raise ValueError("key")
        elif type(key) is not key_type:
            raise ValueError("key")
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, OverflowError) as e:
        raise InvalidInput("Invalid cursor", field=field) from e
    return key, row_id


def _fits(value: Any, bits: int) -> bool:
    """An int (not a bool) that a signed ``bits``-bit column holds."""
    return type(value) is int and -(1 << (bits - 1)) <= value < 1 << (bits - 1)


def _bits(column: Any) -> int:
    return 64 if isinstance(column.type, BigInteger) else 32


@dataclass(frozen=True)
class _Order:
    """A keyset order: a sort column, the id tie-breaker and a direction."""

    key: Any  # column
    key_name: str  # its label in the selected row
    key_type: type
    id: Any
    descending: bool
    _by: dict = field(default_factory=dict, compare=False, repr=False)

    def by(self, *, reverse: bool = False) -> list:
        """The ORDER BY clauses, made once per direction (SQLAlchemy's operators are not free)."""
        made = self._by.get(reverse)
        if made is None:
            descending = self.descending != reverse
            made = [self.key.desc(), self.id.desc()] if descending else [self.key.asc(), self.id.asc()]
            self._by[reverse] = made
        return made

    def beyond(self, cursor: str, *, later: bool, inclusive: bool = False, field: str) -> ColumnElement[bool]:
        """Rows later (or earlier) in this order than the cursor's row; ``inclusive``: or that row."""
        key, row_id = decode_cursor(cursor, self.key_type, key_bits=_bits(self.key), field=field)
        # (key, id) > (k, i) spelled out: row-value comparison is not portable to every SQLite.
        # The redundant `key >= k` is what an index range scan can start from: without it the
        # OR makes PostgreSQL walk (and filter) every row before the cursor, so deep pages slow down.
        if later != self.descending:  # towards larger values
            return and_(self.key >= key, or_(self.key > key, self.id >= row_id if inclusive else self.id > row_id))
        return and_(self.key <= key, or_(self.key < key, self.id <= row_id if inclusive else self.id < row_id))


WINDOWS_KEPT = 256  # projected pages whose statements are kept for the same page asked again
SCAN_BATCH_MAX = 5000  # candidate rows a filter with a query reads at once


@dataclass(frozen=True)
class _Window:
    """A page's statement (one row more than the page: is there more past it?) and, when it
    starts from a cursor, the statement that says whether anything lies beyond that cursor."""

    statement: Select
    rest: Select | None
    limit: int
    backward: bool
    order: _Order


def _window(
    query: Select, order: _Order, *, first: int | None, after: str | None, last: int | None, before: str | None
) -> _Window:
    backward = first is None and last is not None
    window = query
    if after:
        window = window.where(order.beyond(after, later=True, field="after"))
    if before:
        window = window.where(order.beyond(before, later=False, field="before"))
    limit = _clamp((last if backward else first) or 0)
    window = window.order_by(*order.by(reverse=backward)).limit(limit + 1)
    start = before if backward else after
    rest = None
    if start:
        rest = query.where(order.beyond(start, later=backward, inclusive=True, field="before" if backward else "after"))
    return _Window(window, rest, limit, backward, order)


def _clamp(first: int) -> int:
    return max(0, min(first, MAX_PAGE))


def _counted(query: Select) -> Select:
    """How many rows ``query`` selects."""
    return select(func.count()).select_from(query.subquery())


def _aligned(ids: Sequence[K], found: dict[K, T]) -> list[T | None]:
    """Results in the order of ``ids`` with None for the missing: what dataloaders expect."""
    return [found.get(i) for i in ids]


_COMMENT_SORT_KEYS = {
    CommentSort.PUBLISHED_AT: (comments.c.published_at, datetime),
    CommentSort.LIKES: (comments.c.likes, int),
    CommentSort.MATCHES_COUNT: (comments.c.matches_count, int),
}


@cache  # a handful of orders: their clauses are made once
def _comment_order(order: CommentOrder) -> _Order:
    column, key_type = _COMMENT_SORT_KEYS[order.field]
    return _Order(column, column.name, key_type, comments.c.id, order.direction is SortDirection.DESC)


def _comment_query() -> Select:
    # Replies name their parent and thread by VK id; those load only when asked
    # (comments_by_vk_ids), so no page joins comments to themselves.
    # The stored fold (``text_folded``) is for the ``text`` filter only: not read.
    return select(*_COMMENT_COLUMNS)


_COMMENT_COLUMNS = tuple(column for column in comments.c if column.name != "text_folded")


# Rows as views: every stored field of the declaration (domain/declaration.py), by its column.
def _comment_view(row) -> CommentView:
    return view_of(declaration.COMMENT, CommentView, row.__getitem__)


def _version(row) -> CommentVersion:
    return view_of(declaration.VERSION, CommentVersion, row.__getitem__)


def _post_view(row) -> PostView:
    return view_of(declaration.POST, PostView, row.__getitem__)


def _author(row) -> Author:
    return view_of(declaration.AUTHOR, Author, row.__getitem__)


def _match(row) -> Match:
    return view_of(declaration.MATCH, Match, row.__getitem__)


def _task_conditions(flt: TaskFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if flt.kinds is not None:
        conditions.append(tasks.c.kind.in_([k.value for k in flt.kinds]) if flt.kinds else false())
    if flt.states is not None:
        conditions.append(tasks.c.state.in_([s.value for s in flt.states]) if flt.states else false())
    if flt.group_ids is not None:
        conditions.append(tasks.c.group_id.in_(flt.group_ids) if flt.group_ids else false())
    if flt.updated_since is not None:
        conditions.append(tasks.c.updated_at >= flt.updated_since)
    return conditions


# Groups are listed in the order they were added, tasks newest first.
_GROUP_ORDER = _Order(groups.c.id, "id", int, groups.c.id, descending=False)
_TASK_ORDER = _Order(tasks.c.id, "id", int, tasks.c.id, descending=True)
# A comment's audit trail, oldest first (ids grow with time).
_EVENT_ORDER = _Order(comment_events.c.id, "id", int, comment_events.c.id, descending=False)


def _comment_event(row) -> CommentEvent:
    return CommentEvent(
        id=row["id"], comment_id=row["comment_id"], at=row["at"], actor=row["actor"], field=row["field"],
        old_value=row["old_value"], new_value=row["new_value"],
    )
_DELIVERY_ORDER = _Order(alert_deliveries.c.id, "id", int, alert_deliveries.c.id, descending=True)


def _rule_named(query: str | None) -> str | None:
    """``rule_key`` of the saved rule a query is exactly (``rule:name``); None for any other
    query (and for one that does not parse: the query's own path says why)."""
    if query is None:
        return None
    try:
        expr = parse(query)
    except InvalidInput:
        return None
    return rule_key(expr.name) if isinstance(expr, RuleRef) else None


class SqlReadModel:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._engine: AsyncEngine = sessions.kw["bind"]  # autocommit on PostgreSQL (read_session_factory)
        self._dialect = self._engine.dialect.name  # the filters' SQL differs per database
        # On PostgreSQL the SELECTs built here run on asyncpg itself (compiled.py).
        self._driver = DriverStatements(self._engine.dialect) if self._dialect == "postgresql" else None
        # Projected pages' and groups pages' statements, by their arguments.
        self._windows: BoundedDict[tuple, _Window] = BoundedDict(WINDOWS_KEPT)
        # ``projected_by_id``'s statements, by projection (the id is a bound value).
        self._by_id: BoundedDict[Projection, Select] = BoundedDict(WINDOWS_KEPT)
        self._queries: QueryCompiler | None = None  # made on the first filter with a query

    def queries_changed(self) -> None:
        if self._queries is not None:
            self._queries.forget()

    async def compiled(self, flt: CommentFilter) -> QueryMatcher | None:
        """``flt.query`` resolved and compiled, or None without one (``QuerySyntaxError`` for a
        reference to nothing)."""
        if flt.query is None:
            return None
        if self._queries is None:
            self._queries = rule_compiler(self._sessions)
        return await self._queries.compile(flt.query)

    # --- plumbing ---

    async def _read(self, query: Select, read: Callable[[Result], T]) -> T:
        """``read`` of one statement's result, on a Core connection of the sessions' engine: the
        same SQL and result types as a session gives, without an ORM session around each
        SELECT (a page of comments with its relations is six of them)."""
        try:
            async with self._engine.connect() as connection:
                return read(await connection.execute(query))
        except Exception as e:  # connect-time faults too, as UnavailableAware does
            raise_if_unavailable(e)
            raise

    async def _rows(
        self, query: Select, *, kept: bool = False, **values: Any
    ) -> Sequence[RowMapping] | list[dict[str, Any]]:
        """The rows of ``query``, by name; on PostgreSQL run by asyncpg itself (``compiled.py``:
        SQLAlchemy's work around each statement cost as much CPU as the statement's own).
        ``kept``: a statement the read model keeps and runs again; ``values``: of its named
        ``bindparam``s made without one."""
        if self._driver is not None:
            prepared = self._driver.compile(query, kept=kept, **values)
            if prepared is not None:
                return prepared.rows(await self._driver_fetch(prepared.sql, *prepared.arguments))
        if values:
            query = query.params(**values)
        return await self._read(query, lambda result: result.mappings().all())

    def _in(self, column, values: Sequence[int]) -> ColumnElement[bool]:
        return in_values(self._dialect, column, values)

    async def _page(
        self, query: Select, order: _Order, to_node: Callable, *, first: int | None, after: str | None,
        last: int | None = None, before: str | None = None,
    ) -> Page:
        """``first`` rows after ``after``, or (without ``first``) the ``last`` rows before ``before``."""
        window = _window(query, order, first=first, after=after, last=last, before=before)
        return await self._read_window(window, to_node)

    async def _read_window(self, window: _Window, to_node: Callable, *, kept: bool = False) -> Page:
        rows = await self._rows(window.statement, kept=kept)
        limit, backward, key_name = window.limit, window.backward, window.order.key_name
        more = len(rows) > limit
        rows = rows[:limit][::-1] if backward else rows[:limit]
        edges = [(encode_cursor(row[key_name], row["id"]), to_node(row)) for row in rows]
        beyond_cursor = partial(self._exists, window.rest) if window.rest is not None else None
        total = rows[0].get("total") if rows else None
        return Page(
            edges=edges, has_next_page=more and not backward, has_previous_page=more and backward,
            backward=backward, beyond_cursor=beyond_cursor, total=None if total is None else int(total),
        )

    async def _exists(self, query: Select) -> bool:
        return bool(await self._scalar(select(query.exists())))

    async def _count(self, query: Select) -> int:
        return await self._scalar(_counted(query))

    async def _scalar(self, query: Select) -> Any:
        """The one value of a statement of one row and one column (on PostgreSQL run by
        asyncpg itself, as ``_rows`` runs pages: through SQLAlchemy's execution a count cost
        as much CPU as the page beside it)."""
        rows = await self._rows(select(query.scalar_subquery().label("value")))
        return rows[0]["value"]

    async def _by_ids(self, table: Table, column: Column, ids: Sequence, to_node: Callable) -> list:
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return [None] * len(ids)
        rows = await self._rows_where_in(table, column, wanted)
        return _aligned(ids, {row[column.name]: to_node(row) for row in rows})

    async def _rows_where_in(self, table: Table, column: Column, values: list[int], order_by: tuple = ()) -> Sequence:
        """Every row of ``table`` whose ``column`` is one of ``values``: the look-ups a page's
        relations are loaded with, several per page."""
        return await self._rows(select(table).where(self._in(column, values)).order_by(*order_by))

    async def _driver_fetch(self, sql: str, *args: Any) -> Sequence:
        """asyncpg's records of ``sql`` (PostgreSQL only), on a connection of SQLAlchemy's pool
        (``compiled.pooled``) with the read model's fault handling around it."""
        try:
            async with pooled(self._engine) as connection:
                return await connection.fetch(sql, *args)
        except Exception as e:  # connect-time faults too, as UnavailableAware does
            raise_if_unavailable(e)
            raise

    # --- groups ---

    async def groups_page(
        self, *, first: int | None = None, after: str | None = None, last: int | None = None,
        before: str | None = None, active: bool | None = None,
    ) -> Page[Group]:
        # Kept as a projected page's are: a client pages through the same few (Relay's list,
        # the console's communities), and building and keying the statement was a fifth of
        # such a request's CPU.
        key = ("groups", active, first, after, last, before)
        window = self._windows.get(key)
        if window is None:
            window = _window(_groups_query(active), _GROUP_ORDER, first=first, after=after, last=last, before=before)
            self._windows[key] = window
        return await self._read_window(window, group_from_row, kept=True)

    async def groups_page_projected(
        self, projection: Projection, *, first: int | None = None, after: str | None = None,
        last: int | None = None, before: str | None = None, active: bool | None = None,
    ) -> Page[str]:
        """The page ``groups_page`` reads (the same statement's condition, order, cursors and
        limit), each node the JSON text ``projection`` makes of its community."""
        if not self.projects:
            raise NotImplementedError("projected reads need PostgreSQL")
        key = ("groups", projection, active, first, after, last, before)
        window = self._windows.get(key)
        if window is None:
            node = _PROJECTOR.node(projection).label("node")
            query = _groups_query(active).with_only_columns(groups.c.id, node)
            window = _window(query, _GROUP_ORDER, first=first, after=after, last=last, before=before)
            self._windows[key] = window
        return await self._read_window(window, itemgetter("node"), kept=True)

    async def groups_count(self, *, active: bool | None = None) -> int:
        return await self._count(_groups_query(active))

    async def groups_by_ids(self, ids: Sequence[int]) -> list[Group | None]:
        return await self._by_ids(groups, groups.c.id, ids, group_from_row)

    # --- API tokens ---

    async def api_token_by_hash(self, token_hash: str) -> ApiToken | None:
        """Every API request's first statement. In a unit of work it was three round trips
        (BEGIN, the SELECT, ROLLBACK); a profile of ``vkcp serve`` under bench/soak.py found
        ~13% of the API's CPU starting and ending those transactions."""
        rows = await self._rows(select(api_tokens).where(api_tokens.c.token_hash == token_hash))
        return token_from_row(rows[0]) if rows else None

    # --- posts and authors ---

    async def posts_by_ids(self, ids: Sequence[int]) -> list[PostView | None]:
        return await self._by_ids(posts, posts.c.id, ids, _post_view)

    async def authors_by_ids(self, vk_ids: Sequence[int]) -> list[Author | None]:
        return await self._by_ids(authors, authors.c.vk_id, vk_ids, _author)

    # --- comments ---

    async def comments_page(
        self, flt: CommentFilter, order: CommentOrder, *, first: int | None = None, after: str | None = None,
        last: int | None = None, before: str | None = None,
    ) -> Page[CommentView]:
        if flt.query is not None:
            rule = await self._indexed_rule(flt)
            if rule is not None:
                backward = first is None and last is not None
                query, keyset = self._rule_comments(rule, flt, order, backward=backward)
                page = await self._page(
                    query, keyset, _comment_view, first=first, after=after, last=last, before=before
                )
                if page.edges or await self._indexed_rule(flt) == rule:
                    return page
                # Invalidated between the two statements: the page comes from the query itself.
            return await self._query_page(flt, order, None, first=first, after=after, last=last, before=before)
        query, keyset = self._comments_query(flt, order, backward=first is None and last is not None)
        return await self._page(query, keyset, _comment_view, first=first, after=after, last=last, before=before)

    async def _indexed_rule(self, flt: CommentFilter) -> tuple[int, int] | None:
        """(rule id, index generation) when ``flt.query`` is exactly one saved rule
        (``rule:name``) whose matches are stored complete (``domain.rule_index``); else None."""
        key = _rule_named(flt.query)
        if key is None:
            return None
        query = select(rules.c.id, rules.c.index_generation).where(
            rules.c.name_key == key, rules.c.indexed_at.is_not(None)
        )
        rows = await self._rows(query)
        return (rows[0]["id"], rows[0]["index_generation"]) if rows else None

    def _rule_comments(
        self, rule: tuple[int, int], flt: CommentFilter, order: CommentOrder, *, backward: bool
    ) -> tuple[Select, _Order]:
        """The comments of a saved rule's stored matches that the rest of ``flt`` admits. Newest
        first (or oldest) off the index (rule_id, published_at, comment_id), as one keyword's
        page is read off the matches'; in another order, the stored set is a condition. Nothing
        while the rule is not indexed at this generation (the statement says so itself)."""
        rule_id, generation = rule
        rest = replace(flt, query=None)
        still = exists().where(
            rules.c.id == rule_id, rules.c.index_generation == generation, rules.c.indexed_at.is_not(None)
        )
        keyset = _comment_order(order)
        conditions = comment_conditions(rest, self._dialect)
        if order.field is CommentSort.PUBLISHED_AT:
            r = rule_matches.c
            by = _Order(r.published_at, "published_at", datetime, r.comment_id, keyset.descending)
            matched = (
                select(r.published_at, r.comment_id)
                .where(r.rule_id == rule_id, still)
                .order_by(*by.by(reverse=backward))
                .subquery("matched")
            )
            query = (
                _comment_query()
                .select_from(matched.join(comments, comments.c.id == matched.c.comment_id))
                .where(*conditions)
            )
            return query, _Order(matched.c.published_at, "published_at", datetime, matched.c.comment_id,
                                 keyset.descending)
        stored = exists().where(rule_matches.c.rule_id == rule_id, rule_matches.c.comment_id == comments.c.id)
        return _comment_query().where(stored, still, *conditions), keyset

    async def _query_page(
        self, flt: CommentFilter, order: CommentOrder, projection: Projection | None, *, first: int | None,
        after: str | None, last: int | None, before: str | None,
    ) -> Page:
        """A page of a filter with a rule-language query: the database gives candidates in the
        page's order (``comment_conditions`` narrow by the query's substrings), the domain's
        matcher keeps those that match, batch after batch until the page is full."""
        matcher = await self.compiled(flt)
        assert matcher is not None
        backward = first is None and last is not None
        query, keyset = self._comments_query(flt, order, backward=backward, query=matcher)
        if after:
            query = query.where(keyset.beyond(after, later=True, field="after"))
        if before:
            query = query.where(keyset.beyond(before, later=False, field="before"))
        limit = _clamp((last if backward else first) or 0)
        rows = await self._scan(query, keyset, matcher, reverse=backward, want=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit][::-1] if backward else rows[:limit]
        key_name = keyset.key_name
        cursors = [encode_cursor(row[key_name], row["id"]) for row in rows]
        nodes: list[Any]
        if projection is None:
            nodes = [_comment_view(row) for row in rows]
        else:
            nodes = await self._projected_nodes(flt, order, projection, [row["id"] for row in rows], matcher)
        start = before if backward else after
        beyond_cursor = None
        if start:
            base, _ = self._comments_query(flt, order, backward=not backward, query=matcher)
            rest = base.where(
                keyset.beyond(start, later=backward, inclusive=True, field="before" if backward else "after")
            )
            beyond_cursor = partial(self._any_match, rest, keyset, matcher, not backward)
        return Page(
            edges=list(zip(cursors, nodes)), has_next_page=more and not backward,
            has_previous_page=more and backward, backward=backward, beyond_cursor=beyond_cursor,
        )

    async def _any_match(self, query: Select, keyset: _Order, matcher: QueryMatcher, reverse: bool) -> bool:
        return bool(await self._scan(query, keyset, matcher, reverse=reverse, want=1))

    async def _scan(
        self, query: Select, keyset: _Order, matcher: QueryMatcher, *, reverse: bool, want: int
    ) -> list:
        """The first ``want`` rows of ``query`` (in ``keyset``'s order, or its reverse) whose
        text ``matcher`` matches, read in growing batches."""
        found: list = []
        batch = max(2 * want, 64)
        moved: ColumnElement[bool] | None = None
        while True:
            statement = query.where(moved) if moved is not None else query
            rows = await self._rows(statement.order_by(*keyset.by(reverse=reverse)).limit(batch))
            for row in rows:
                if matcher.matches(row["text"]):
                    found.append(row)
                    if len(found) >= want:
                        return found
            if len(rows) < batch:
                return found
            last = rows[-1]
            moved = keyset.beyond(encode_cursor(last[keyset.key_name], last["id"]), later=not reverse, field="after")
            batch = min(batch * 4, SCAN_BATCH_MAX)

    async def _projected_nodes(
        self, flt: CommentFilter, order: CommentOrder, projection: Projection, ids: list[int], matcher: QueryMatcher
    ) -> list[str]:
        if not ids:
            return []
        query, _ = self._comments_query(flt, order, backward=False, query=matcher)
        node = _PROJECTOR.node(projection).label("node")
        statement = query.with_only_columns(comments.c.id, node).where(self._in(comments.c.id, ids))
        written = {row["id"]: row["node"] for row in await self._rows(statement)}
        return [written[i] for i in ids]

    @property
    def projects(self) -> bool:
        """Whether ``comments_page_projected`` can answer (PostgreSQL writes the JSON)."""
        return self._dialect == "postgresql"

    def projection_refusal(self, projection: Projection) -> str | None:
        """None when ``comments_page_projected`` writes ``projection``; else why not, in a word
        (``Unprojectable.kind``). Asked only where the read model ``projects``."""
        return projection_refusal(projection)

    async def comments_page_projected(
        self, flt: CommentFilter, order: CommentOrder, projection: Projection, *, first: int | None = None,
        after: str | None = None, last: int | None = None, before: str | None = None, counted: bool = False,
    ) -> Page[str]:
        """The page ``comments_page`` reads (the same statement's conditions, order, cursors
        and limit), each node the JSON text ``projection`` makes of its comment; ``counted``:
        and ``total``, ``comments_count``'s statement as a column of the page's (an
        uncorrelated subquery: PostgreSQL runs it once), so a ``totalCount`` beside the page is
        no second round trip. An empty page has no row to carry it: ``total`` stays None."""
        if not self.projects:
            raise NotImplementedError("projected reads need PostgreSQL")
        if flt.query is not None:
            rule = await self._indexed_rule(flt)
            if rule is not None:
                query, keyset = self._rule_comments(rule, flt, order, backward=first is None and last is not None)
                node = _PROJECTOR.node(projection).label("node")
                query = query.with_only_columns(comments.c.id, comments.c[keyset.key_name], node)
                rule_window = _window(query, keyset, first=first, after=after, last=last, before=before)
                page = await self._read_window(rule_window, itemgetter("node"))
                if page.edges or await self._indexed_rule(flt) == rule:
                    return page
            return await self._query_page(flt, order, projection, first=first, after=after, last=last, before=before)
        # The same page asked again (a console polling, a script) reuses its statements: their
        # construction and SQLAlchemy's cache key were a tenth of a small page's CPU.
        key = (projection, flt, order, first, after, last, before, counted)
        window = self._windows.get(key)
        if window is None:
            query, keyset = self._comments_query(flt, order, backward=first is None and last is not None)
            node = _PROJECTOR.node(projection).label("node")
            query = query.with_only_columns(comments.c.id, comments.c[keyset.key_name], node)
            window = _window(query, keyset, first=first, after=after, last=last, before=before)
            count = self._count_statement(flt) if counted else None
            if count is not None:
                # Through a derived table: a scalar subquery of it inside the page's statement
                # is never correlated with the page's own ``comments``.
                total = select(*count.subquery("counted").c).scalar_subquery().label("total")
                window = replace(window, statement=window.statement.add_columns(total))
            self._windows[key] = window
        return await self._read_window(window, itemgetter("node"), kept=True)

    async def projected_by_id(self, projection: Projection, pk: int) -> str | None:
        """The object with row id ``pk`` of ``projection``'s view, written by ``projection``
        (one statement: its relations are subqueries of it); None when there is none."""
        if not self.projects:
            raise NotImplementedError("projected reads need PostgreSQL")
        query = self._by_id.get(projection)
        if query is None:  # made once per projection, as a page's statements are kept
            table = _TABLES[declaration.VIEWS[projection.view].table]
            node = _PROJECTOR.node(projection).label("node")
            query = select(node).select_from(table).where(table.c.id == bindparam("pk", type_=table.c.id.type))
            self._by_id[projection] = query
        rows = await self._rows(query, kept=True, pk=pk)
        return rows[0]["node"] if rows else None

    def _comments_query(
        self, flt: CommentFilter, order: CommentOrder, *, backward: bool, query: QueryMatcher | None = None
    ) -> tuple[Select, _Order]:
        keyset = _comment_order(order)
        if flt.keyword_ids is not None and len(flt.keyword_ids) == 1 and order.field is CommentSort.PUBLISHED_AT:
            # Read in the order _page will ask for: backwards when it reads the last rows.
            return self._keyword_comments(flt, keyset, reverse=backward, matcher=query)
        return _comment_query().where(*comment_conditions(flt, self._dialect, query)), keyset

    def _keyword_comments(
        self, flt: CommentFilter, keyset: _Order, *, reverse: bool, matcher: QueryMatcher | None = None
    ) -> tuple[Select, _Order]:
        """One keyword's comments in time order, read off the matches' index
        (keyword_id, published_at, comment_id): matches carry their comment's time. Walking
        comments newest first and probing matches for each cost the inverse of the keyword's
        share: 23,000 probes for a keyword in 0.8% of 10M comments, every comment for a rare one.
        A comment matched more than once is one row (DISTINCT, over the index in the page's
        direction: PostgreSQL plans a subquery alone, so its order is spelled out or it sorts
        every match); the other conditions apply to the comment. One keyword only: PostgreSQL
        reads ``= ANY`` of several out of the index's order, so several keywords keep the walk."""
        m = matches.c
        assert flt.keyword_ids is not None  # _comments_query comes here for exactly one keyword
        (keyword_id,) = flt.keyword_ids
        order = _Order(m.published_at, "published_at", datetime, m.comment_id, keyset.descending)
        matched = (
            select(m.published_at, m.comment_id)
            .where(m.keyword_id == keyword_id)
            .distinct()
            .order_by(*order.by(reverse=reverse))
            .subquery("matched")
        )
        query = (
            _comment_query()
            .select_from(matched.join(comments, comments.c.id == matched.c.comment_id))
            .where(*comment_conditions(replace(flt, keyword_ids=None), self._dialect, matcher))
        )
        return query, _Order(matched.c.published_at, "published_at", datetime, matched.c.comment_id, keyset.descending)

    async def comments_count(self, flt: CommentFilter) -> int:
        if flt.query is not None:  # an indexed saved rule off its stored matches, else its matcher decides
            counted = await self._rule_count(flt)
            return counted if counted is not None else await self._query_count(flt)
        statement = self._count_statement(flt)
        assert statement is not None
        return int(await self._scalar(statement))

    def _count_statement(self, flt: CommentFilter) -> Select | None:
        """One row, one column: how many comments pass ``flt``; None for a filter with a
        rule-language query (its matcher decides each candidate, or its stored matches count:
        ``comments_count``)."""
        if flt.query is not None:
            return None
        if flt.keyword_ids and replace(flt, keyword_ids=None) == CommentFilter():
            # Only keywords: every match belongs to a stored comment (a foreign key, cascading),
            # so the matches alone say how many comments, and no comment is visited (at 10M
            # comments: 22 ms, from 1.7 s joining 80,000). One keyword: its aggregate row, which
            # counts exactly that (stats_keywords.comments, kept by the repositories).
            if len(flt.keyword_ids) == 1:
                return select(func.coalesce(func.sum(stats_keywords.c.comments), 0)).where(
                    stats_keywords.c.keyword_id == flt.keyword_ids[0]
                )
            return select(func.count(distinct(matches.c.comment_id))).where(
                self._in(matches.c.keyword_id, flt.keyword_ids)
            )
        if countable(flt):  # communities, time, review state: from the aggregates
            return aggregated_count(flt, self._dialect)
        return _counted(select(comments.c.id).where(*comment_conditions(flt, self._dialect)))

    async def _rule_count(self, flt: CommentFilter) -> int | None:
        """How many comments ``flt`` selects when its query is exactly an indexed saved rule,
        from the stored matches (with the rest of the filter, joined to the comments); None
        when it is not. One statement says both whether the rule is indexed and the count, so
        an invalidation between them cannot give a count of a set being rebuilt."""
        key = _rule_named(flt.query)
        if key is None:
            return None
        ready = (
            select(rules.c.id).where(rules.c.name_key == key, rules.c.indexed_at.is_not(None)).scalar_subquery()
        )
        rest = replace(flt, query=None)
        r = rule_matches.c
        if rest == CommentFilter():
            counted = select(func.count()).select_from(rule_matches).where(r.rule_id == ready)
        else:
            counted = (
                select(func.count())
                .select_from(rule_matches.join(comments, comments.c.id == r.comment_id))
                .where(r.rule_id == ready, *comment_conditions(rest, self._dialect))
            )
        rows = await self._rows(select(ready.label("rule_id"), counted.scalar_subquery().label("n")))
        return int(rows[0]["n"]) if rows and rows[0]["rule_id"] is not None else None

    async def rule_counts(self, queries: Sequence[str]) -> list[int]:
        """Comments each query matches. A query that is exactly an indexed saved rule is
        counted off its stored matches; the others' candidates are read once, every such query
        decided on each by one ``RuleSet``."""
        if not queries:
            return []
        keys = [_rule_named(q) for q in queries]
        stored: dict[str, int] = {}
        if any(k is not None for k in keys):
            counted = (
                select(func.count()).select_from(rule_matches).where(rule_matches.c.rule_id == rules.c.id)
                .scalar_subquery()
            )
            statement = select(rules.c.name_key, counted.label("n")).where(
                rules.c.indexed_at.is_not(None), in_texts(self._dialect, rules.c.name_key, [k for k in keys if k])
            )
            stored = {row["name_key"]: int(row["n"]) for row in await self._rows(statement)}
        counts = [stored[k] if k is not None and k in stored else 0 for k in keys]
        others = [i for i, k in enumerate(keys) if k is None or k not in stored]
        if others:
            for i, n in zip(others, await self._run_counts([queries[i] for i in others]), strict=True):
                counts[i] = n
        return counts

    async def _run_counts(self, queries: Sequence[str]) -> list[int]:
        if not queries:
            return []
        matchers = [await self.compiled(CommentFilter(query=q)) for q in queries]
        narrowed = [narrowing_condition(m.narrowing, self._dialect) for m in matchers if m is not None]
        statement = select(comments.c.text)
        if narrowed and all(n is not None for n in narrowed):
            statement = statement.where(or_(*[n for n in narrowed if n is not None]))
        rule_set = RuleSet([m.expr for m in matchers if m is not None], get_lemmatizer())
        counts = [0] * len(queries)
        for row in await self._rows(statement):
            for i in rule_set.matching(row["text"]):
                counts[i] += 1
        return counts

    async def _query_count(self, flt: CommentFilter) -> int:
        """Comments a filter with a query selects: the candidates' texts, read in one statement
        (one index scan: batches in id order would each scan the text index again), each
        decided by the matcher."""
        matcher = await self.compiled(flt)
        assert matcher is not None
        statement = select(comments.c.text).where(*comment_conditions(flt, self._dialect, matcher))
        matches = matcher.matches
        return sum(1 for row in await self._rows(statement) if matches(row["text"]))

    async def comments_by_ids(self, ids: Sequence[int]) -> list[CommentView | None]:
        return await self._by_ids(comments, comments.c.id, ids, _comment_view)

    async def comments_by_vk_ids(self, keys: Sequence[tuple[int, int]]) -> list[CommentView | None]:
        def query_for(wanted: list[tuple[int, int]]) -> Select:
            by_wall: dict[int, list[int]] = {}
            for owner_id, vk_id in wanted:
                by_wall.setdefault(owner_id, []).append(vk_id)
            return _comment_query().where(
                or_(*(and_(comments.c.owner_id == o, self._in(comments.c.vk_id, v)) for o, v in by_wall.items()))
            )

        pairs = [(owner_id, vk_id) for owner_id, vk_id in keys]  # tuples, whatever sequences came
        wanted = list(dict.fromkeys(pairs))
        if not wanted:
            return []
        rows = await self._rows(query_for(wanted))
        return _aligned(pairs, {(r["owner_id"], r["vk_id"]): _comment_view(r) for r in rows})

    async def matches_by_comment_ids(self, ids: Sequence[int]) -> list[list[Match]]:
        wanted = list(dict.fromkeys(ids))
        found: dict[int, list[Match]] = {i: [] for i in wanted}
        if wanted:
            for row in await self._rows_where_in(matches, matches.c.comment_id, wanted, _MATCH_ORDER):
                found[row["comment_id"]].append(_match(row))
        return [found[i] for i in ids]

    async def versions_by_comment_ids(self, ids: Sequence[int]) -> list[list[CommentVersion]]:
        wanted = list(dict.fromkeys(ids))
        found: dict[int, list[CommentVersion]] = {i: [] for i in wanted}
        if wanted:
            rows = await self._rows_where_in(comment_versions, comment_versions.c.comment_id, wanted, _VERSION_ORDER)
            for row in rows:
                found[row["comment_id"]].append(_version(row))
        return [found[i] for i in ids]

    async def matches_and_keywords_by_comment_ids(
        self, ids: Sequence[int]
    ) -> tuple[list[list[Match]], dict[int, Keyword | None]]:
        """``matches_by_comment_ids`` and, in the same statement, the keyword of every match
        found (None for a keyword that is gone): a page's matches with their keywords in one
        round trip rather than two, one after the other."""
        wanted = list(dict.fromkeys(ids))
        found: dict[int, list[Match]] = {i: [] for i in wanted}
        found_keywords: dict[int, Keyword | None] = {}
        if wanted:
            for row in await self._matches_with_keywords(wanted):
                found[row["comment_id"]].append(_match(row))
                keyword_id = row["keyword_id"]
                if keyword_id not in found_keywords:
                    found_keywords[keyword_id] = (
                        keyword_from_row({c.name: row[f"k_{c.name}"] for c in keywords.columns})
                        if row["k_id"] is not None else None
                    )
        return [found[i] for i in ids], found_keywords

    async def _matches_with_keywords(self, wanted: list[int]) -> Sequence:
        query = (
            select(matches, *(c.label(f"k_{c.name}") for c in keywords.columns))
            .select_from(matches.outerjoin(keywords, keywords.c.id == matches.c.keyword_id))
            .where(self._in(matches.c.comment_id, wanted))
            .order_by(*_MATCH_ORDER)
        )
        return await self._rows(query)

    # --- keywords ---

    async def keywords_by_ids(self, ids: Sequence[int]) -> list[Keyword | None]:
        return await self._by_ids(keywords, keywords.c.id, ids, keyword_from_row)

    async def keywords_page(
        self,
        *,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        active: bool | None = None,
        category: str | None = None,
        text: str | None = None,
    ) -> Page[Keyword]:
        order = _Order(keywords.c.id, "id", int, keywords.c.id, descending=False)
        return await self._page(
            _keywords_query(active, category, text), order, keyword_from_row,
            first=first, after=after, last=last, before=before,
        )

    async def keywords_count(
        self, *, active: bool | None = None, category: str | None = None, text: str | None = None
    ) -> int:
        return await self._count(_keywords_query(active, category, text))

    async def keyword_matches_counts(self, ids: Sequence[int]) -> list[int]:
        """Matches stored per keyword, aligned with ``ids`` (0 for none): the keywords' aggregate
        rows (``stats_keywords.matches``, kept exact by the repositories in the transactions that
        change matches, as ``comments_count`` of one keyword reads ``comments`` there). Counting
        the matches themselves read every match of every keyword listed: under bench/soak.py a
        ``keywords`` page cost PostgreSQL 80 ms and a million buffers per 400 calls, more as
        the store grew."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return [0] * len(ids)
        query = select(stats_keywords.c.keyword_id, stats_keywords.c.matches).where(
            self._in(stats_keywords.c.keyword_id, wanted)
        )
        counts = dict(await self._read(query, Result.all))
        return [counts.get(i, 0) for i in ids]

    # --- tasks ---

    async def tasks_page(
        self, flt: TaskFilter, *, first: int | None = None, after: str | None = None, last: int | None = None,
        before: str | None = None,
    ) -> Page[Task]:
        query = select(tasks).where(*_task_conditions(flt))
        return await self._page(query, _TASK_ORDER, task_from_row, first=first, after=after, last=last, before=before)

    async def comment_events_page(
        self, comment_id: int, *, first: int | None = None, after: str | None = None, last: int | None = None,
        before: str | None = None,
    ) -> Page[CommentEvent]:
        query = select(comment_events).where(comment_events.c.comment_id == comment_id)
        return await self._page(
            query, _EVENT_ORDER, _comment_event, first=first, after=after, last=last, before=before
        )

    async def comment_events_count(self, comment_id: int) -> int:
        return await self._count(select(comment_events.c.id).where(comment_events.c.comment_id == comment_id))

    async def tasks_count(self, flt: TaskFilter) -> int:
        return await self._count(select(tasks.c.id).where(*_task_conditions(flt)))

    async def tasks_by_ids(self, ids: Sequence[int]) -> list[Task | None]:
        return await self._by_ids(tasks, tasks.c.id, ids, task_from_row)

    # --- alert deliveries ---

    async def alert_deliveries_page(
        self, flt: DeliveryFilter, *, first: int | None = None, after: str | None = None, last: int | None = None,
        before: str | None = None,
    ) -> Page[DeliveryView]:
        return await self._page(
            delivery_query(flt, self._dialect), _DELIVERY_ORDER, delivery_from_row,
            first=first, after=after, last=last, before=before,
        )

    async def alert_deliveries_count(self, flt: DeliveryFilter) -> int:
        return await self._count(delivery_query(flt, self._dialect))

    # --- statistics ---

    async def stats(self, window: StatsWindow) -> Stats:
        return await read_stats(self._sessions, window)

    async def task_counts(self) -> dict[tuple[str, str], int]:
        query = select(tasks.c.kind, tasks.c.state, func.count()).group_by(tasks.c.kind, tasks.c.state)
        async with self._sessions() as session:
            return {(kind, state): count for kind, state, count in await session.execute(query)}

    async def recent_parse_results(self, group_ids: Sequence[int], per_group: int) -> dict[int, list[dict[str, Any]]]:
        if not group_ids:
            return {}
        # Numbered newest first within each group, on ix_tasks_group_id_kind_state.
        ranked = (
            select(
                tasks.c.group_id, tasks.c.result,
                func.row_number().over(partition_by=tasks.c.group_id, order_by=tasks.c.id.desc()).label("n"),
            )
            .where(tasks.c.group_id.in_(list(group_ids)), tasks.c.kind == "PARSE", tasks.c.state == "SUCCEEDED")
            .subquery()
        )
        query = select(ranked.c.group_id, ranked.c.result).where(ranked.c.n <= per_group).order_by(
            ranked.c.group_id, ranked.c.n)
        found: dict[int, list[dict]] = {}
        async with self._sessions() as session:
            for group_id, result in await session.execute(query):
                if isinstance(result, dict):
                    found.setdefault(group_id, []).append(result)
        return found

    async def tasks_waiting(self) -> tuple[int, datetime | None]:
        waiting = (tasks.c.state == "QUEUED") & tasks.c.waiting_until.is_not(None)
        query = select(func.count(), func.min(tasks.c.waiting_until)).where(waiting)
        async with self._sessions() as session:
            count, until = (await session.execute(query)).one()
        return int(count), until

    async def alert_delivery_health(self) -> AlertDeliveryHealth:
        d = alert_deliveries.c
        async with self._sessions() as session:
            counts: dict[str, int] = {
                state: n for state, n in (await session.execute(select(d.state, func.count()).group_by(d.state))).all()
            }
            pending = d.state == DeliveryState.PENDING.value
            oldest = (await session.execute(select(func.min(d.created_at)).where(pending))).scalar_one()
            failing = (await session.execute(
                select(func.count(func.distinct(d.channel_id))).where(pending, d.attempts > 0)
            )).scalar_one()
        by_state = {s.value: int(counts.get(s.value, 0)) for s in DeliveryState}
        if oldest is not None and oldest.tzinfo is None:  # SQLite gives the stored naive UTC text back
            oldest = oldest.replace(tzinfo=UTC)
        return AlertDeliveryHealth(by_state=by_state, oldest_pending_at=oldest, failing_channels=int(failing))

    async def alert_latencies(self, *, after_id: int, limit: int) -> tuple[int, list[float]]:
        d = alert_deliveries.c
        sent = d.state == DeliveryState.SENT.value
        async with self._sessions() as session:
            if after_id < 0:
                top = (await session.execute(select(func.max(d.id)).where(sent))).scalar_one()
                return int(top or 0), []
            rows = (await session.execute(
                select(d.id, d.created_at, d.sent_at).where(sent, d.id > after_id).order_by(d.id).limit(limit)
            )).all()
        if not rows:
            return after_id, []
        return rows[-1].id, [max(0.0, (r.sent_at - r.created_at).total_seconds()) for r in rows if r.sent_at]

    async def task_stalls(self) -> tuple[int, int]:
        stalled_now = func.count().filter((tasks.c.state == "RUNNING") & tasks.c.stalled_at.is_not(None))
        query = select(stalled_now, func.coalesce(func.sum(tasks.c.stalls), 0))
        async with self._sessions() as session:
            now, total = (await session.execute(query)).one()
        return int(now), int(total)



def _relation(view: declaration.View, name: str) -> declaration.Relation:
    found = view.relation(name)
    assert found is not None, name
    return found


def _order_of(table: Table, relation: declaration.Relation) -> tuple[Column, ...]:
    """A batched look-up's order: by the key, then as the declared relation orders one key's rows."""
    return (*(table.c[c] for c in relation.columns), *(table.c[c] for c in relation.order_by))


_MATCH_ORDER = _order_of(matches, _relation(declaration.COMMENT, "matches"))  # each comment's in text order
_VERSION_ORDER = _order_of(comment_versions, _relation(declaration.COMMENT, "versions"))  # oldest first


def _groups_query(active: bool | None) -> Select:
    query = select(groups)
    return query.where(groups.c.active == active) if active is not None else query


def _keywords_query(active: bool | None, category: str | None = None, text: str | None = None) -> Select:
    query = select(keywords)
    if active is not None:
        query = query.where(keywords.c.active == active)
    if category is not None:
        query = query.where(keywords.c.category == category)
    if text:
        # word_key is the folded word (casefold, "ё" as "е"): a case-insensitive search everywhere.
        query = query.where(keywords.c.word_key.like(like_pattern(keyword_key(text)), escape=LIKE_ESCAPE))
    return query


# What projected reads (``projection.py``) write: the declared views over their tables.
_TABLES = {t.name: t for t in (comments, posts, groups, authors, matches, keywords, comment_versions)}
_PROJECTOR = Projector(declaration.VIEWS, _TABLES)


def projection_refusal(projection: Projection) -> str | None:
    """None when a projected page on PostgreSQL writes ``projection``; else why not, in a word
    (``Unprojectable.kind``). Needs no database: it is the statement's text that is made."""
    try:
        _PROJECTOR.node(projection)
    except Unprojectable as e:
        return e.kind
    return None
