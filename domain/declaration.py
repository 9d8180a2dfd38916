"""What each object the API reads is made of, declared once: its fields (a table's column, or a
rule computed from other fields), their nullability and description, and its relations (the
keys they join on, their order). Everything else derives from here:

- ``infrastructure/db/queries.py`` makes the views of rows (``view_of``) and orders batched
  look-ups by each relation's ``order_by``;
- ``infrastructure/db/projection.py`` writes the JSON of a projected page (columns, rules,
  relations as correlated subqueries);
- ``graphql_api/declared.py`` makes the Strawberry types' fields, converters, relation
  resolvers, dataloaders and a page's prefetch;
- ``graphql_api/plan.py`` takes its relations and projected types from it, and
  ``tests/e2e/test_read_plan.py`` generates its projected documents from it.

How to add a scalar field (say a comment's ``note``):

1. a migration (``infrastructure/db/migrations/versions``) and the column in
   ``infrastructure/db/tables.py``;
2. one ``Field`` in the view below (``Field("note", Spelling.TEXT, "The reviewer's note.",
   nullable=True)``; ``column=`` when the column is named otherwise, ``attribute=`` when the
   domain object calls it otherwise);
3. ``schema.graphql`` regenerated (``python -m graphql_api.schema > schema.graphql``).

The field is then read, converted, answered by both executors and written by projected pages
(``tests/e2e/test_read_plan.py`` asks for it, generated from here). Two pins move with any
migration and schema change: the head revision in ``tests/integration/test_db_schema.py`` and
the console's build (its hash covers schema.graphql). A field a projected page cannot write (a
Float, a method, a relation no view declares) fails ``tests/unit/test_declaration.py`` until
it is written or named in its view's ``unprojected`` with why not.

A computed field is a ``Rule``: branches of text made of literals and other fields, tried in
order; both paths evaluate the same rule (``evaluate`` here, ``projection._rule`` in SQL).
Nothing here knows Strawberry or SQLAlchemy.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

VK = "https://vk.com"  # links to VK objects start here


class Spelling(enum.StrEnum):
    """How a projected attribute is written into JSON."""

    TEXT = "text"  # a string, as it is
    BOOLEAN = "boolean"
    INT32 = "int32"  # an integer that must fit 32 bits: the read fails on one that does not
    TIME = "time"  # ISO 8601 in UTC, as ``datetime.isoformat`` spells an aware UTC time
    GLOBAL_ID = "global_id"  # base64 of "<kind>:<id>" (``graphql_api.ids.global_id``)
    FLOAT = "float"  # a float: no projected page writes one (PostgreSQL and orjson spell them apart)
    ENUM = "enum"  # a text column holding a member's name, answered as the GraphQL enum ``Field.enum`` names
    TEXT_LIST = "text_list"  # a JSON array of strings (JSON on SQLite, JSONB on PostgreSQL), in its order


# --- computed fields ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """A field's value as text (an integer: its decimal digits; ``negate``: of its negation)."""

    name: str
    negate: bool = False


@dataclass(frozen=True)
class When:
    """A branch's condition: ``NON_EMPTY`` (a text neither null nor empty) or ``POSITIVE``."""

    test: str
    name: str


NON_EMPTY, POSITIVE = "non_empty", "positive"


@dataclass(frozen=True)
class Rule:
    """A text made by the first branch whose condition holds (None: always)."""

    branches: tuple[tuple[When | None, tuple[str | Ref, ...]], ...]

    @classmethod
    def text(cls, *parts: str | Ref) -> Rule:
        return cls(((None, parts),))

    def names(self) -> Iterator[str]:
        for when, parts in self.branches:
            if when is not None:
                yield when.name
            yield from (p.name for p in parts if isinstance(p, Ref))


def holds(when: When | None, get: Callable[[str], Any]) -> bool:
    if when is None:
        return True
    value = get(when.name)
    if when.test == NON_EMPTY:
        return bool(value)
    if when.test == POSITIVE:
        return value is not None and value > 0
    raise ValueError(f"no such test: {when.test}")


def evaluate(rule: Rule, get: Callable[[str], Any]) -> str | None:
    """The rule's text for the object whose fields ``get`` reads (None: no branch held)."""
    for when, parts in rule.branches:
        if holds(when, get):
            return "".join(
                p if isinstance(p, str) else str(-get(p.name) if p.negate else get(p.name)) for p in parts
            )
    return None


# --- fields, relations, views -------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One field of a view. ``name`` is the API's (snake case: ``author_id`` is ``authorId``);
    ``attribute`` the domain object's, ``column`` the table's (both default to ``name``).
    ``exposed`` False: a key the API keeps to itself (a relation's). ``rule``: computed, no
    column. ``GLOBAL_ID``: the object's row id, answered as its global id."""

    name: str
    spelling: Spelling
    description: str = ""
    nullable: bool = False
    attribute: str = ""
    column: str = ""
    exposed: bool = True
    rule: Rule | None = None
    enum: str = ""  # ``ENUM``: the API's enum type (its members' names are the stored values)

    def __post_init__(self) -> None:
        if not self.attribute:
            object.__setattr__(self, "attribute", self.name)
        if not self.column and self.rule is None:
            object.__setattr__(self, "column", self.attribute)

    @property
    def stored(self) -> bool:
        return self.rule is None


@dataclass(frozen=True)
class Relation:
    """Related objects of view ``view``: those whose ``columns`` equal this object's ``keys``
    (field names), at most one, or a list (``many``) ordered by ``order_by`` (the related
    table's columns). ``load`` is the ``ReadModel`` method that reads them by key, batched (a
    key is the value of the one key field, or the tuple of several; a key with a null part
    finds nothing). ``view`` empty: a count, not objects (not projected)."""

    name: str
    view: str
    keys: tuple[str, ...]
    columns: tuple[str, ...]
    load: str
    description: str = ""
    many: bool = False
    order_by: tuple[str, ...] = ()

    def key(self, get: Callable[[str], Any]) -> Any:
        values = tuple(get(k) for k in self.keys)
        if any(v is None for v in values):
            return None
        return values[0] if len(values) == 1 else values


@dataclass(frozen=True)
class View:
    name: str  # the name a ``domain.queries.Projection`` uses
    table: str
    type_name: str  # the API's object type
    fields: tuple[Field, ...]
    relations: tuple[Relation, ...] = ()
    # The API's fields of this type that projected pages do not write, with why
    # (``tests/unit/test_declaration.py``: nothing goes unlisted).
    unprojected: dict[str, str] = field(default_factory=dict)

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)

    def relation(self, name: str) -> Relation | None:
        return next((r for r in self.relations if r.name == name), None)


def _id(kind: str) -> Field:
    return Field("pk", Spelling.GLOBAL_ID, attribute="id", column="id", exposed=False, description=kind)


_WALL = "VK wall owner id (the community's id, negated)."
_LIKES = "Likes, as of the last collection."

COMMENT = View(
    "comment", "comments", "Comment",
    fields=(
        _id("Comment"),
        Field("vk_id", Spelling.INT32, "VK's id of the comment (unique only within one wall)."),
        Field("owner_id", Spelling.INT32, _WALL),
        Field("author_id", Spelling.INT32, "VK id of the author (negative: a community).", attribute="from_id"),
        Field("text", Spelling.TEXT, "The comment's text as last collected; a deleted comment keeps the text it had "
              "(VK sends none)."),
        Field("published_at", Spelling.TIME, "When it was written."),
        Field("likes", Spelling.INT32, _LIKES),
        Field("deleted", Spelling.BOOLEAN, "Whether it was deleted on VK (VK shows it as deleted, or it is gone). "
              "Kept here, never erased."),
        Field("deleted_at", Spelling.TIME, "When the collector noticed the deletion (a re-read of its post); null "
              "while not deleted.", nullable=True),
        Field("edited_at", Spelling.TIME, "When a re-read of its post last found the text changed; null: never seen "
              "edited. The earlier texts are in `versions`.", nullable=True),
        Field("viewed", Spelling.BOOLEAN, "Marked as viewed by a reviewer."),
        Field("archived", Spelling.BOOLEAN, "Marked as archived by a reviewer."),
        Field("matches_count", Spelling.INT32, "How many keyword matches the comment has."),
        # The team's review workflow (domain/review.py; changed by setCommentState, each change
        # in commentEvents).
        Field("status", Spelling.ENUM, "Where it is in the team's review.", enum="CommentStatus"),
        Field("assignee", Spelling.TEXT, "Who it is assigned to: an API token holder's name; null: nobody.",
              nullable=True),
        Field("tags", Spelling.TEXT_LIST, "Free labels (trimmed, lowercase, sorted)."),
        Field("note", Spelling.TEXT, "The team's note on it; null: none.", nullable=True),
        Field("group_id", Spelling.INT32, exposed=False),
        Field("post_id", Spelling.INT32, exposed=False),
        Field("post_vk_id", Spelling.INT32, exposed=False),
        Field("parent_vk_id", Spelling.INT32, nullable=True, exposed=False),
        Field("thread_vk_id", Spelling.INT32, nullable=True, exposed=False),
        Field("reply_to_user_id", Spelling.INT32, "VK id of the user this reply answers, as VK says; null for a "
              "top-level comment, or when VK did not say (comments collected before it was kept: until their "
              "post is read again).", nullable=True, column="reply_to_user"),
        Field("url", Spelling.TEXT, "Link to the comment on VK.",
              rule=Rule.text(f"{VK}/wall", Ref("owner_id"), "_", Ref("post_vk_id"), "?reply=", Ref("vk_id"))),
    ),
    relations=(
        Relation("group", "group", ("group_id",), ("id",), "groups_by_ids",
                 "The community the comment was written in."),
        Relation("post", "post", ("post_id",), ("id",), "posts_by_ids", "The post the comment is under."),
        Relation("parent", "comment", ("owner_id", "parent_vk_id"), ("owner_id", "vk_id"), "comments_by_vk_ids",
                 "The comment this one answers; null for a top-level comment."),
        Relation("thread", "comment", ("owner_id", "thread_vk_id"), ("owner_id", "vk_id"), "comments_by_vk_ids",
                 "The top-level comment whose thread this reply is in; null for a top-level comment."),
        Relation("author", "author", ("author_id",), ("vk_id",), "authors_by_ids",
                 "Who wrote it; null when VK told us nothing about the author."),
        Relation("matches", "match", ("pk",), ("comment_id",), "matches_by_comment_ids",
                 "Where the keywords matched, in text order.", many=True,
                 order_by=("start_pos", "end_pos", "keyword_id")),
        Relation("versions", "version", ("pk",), ("comment_id",), "versions_by_comment_ids",
                 "The texts it had before its current `text`, oldest first, each with when it was first seen; "
                 "empty for a comment never seen edited. Edits show when a re-read of the post finds them "
                 "(see the README).", many=True, order_by=("seen_at", "id")),
    ),
    unprojected={"highlights": "takes a rule-language query: its terms are found in Python (domain.rules)"},
)

POST = View(
    "post", "posts", "Post",
    fields=(
        _id("Post"),
        Field("vk_id", Spelling.INT32, "VK's id of the post within its wall."),
        Field("owner_id", Spelling.INT32, _WALL),
        Field("author_id", Spelling.INT32, "VK id of who published it (negative: the community itself).",
              nullable=True, attribute="from_id"),
        Field("text", Spelling.TEXT, "The post's text."),
        Field("published_at", Spelling.TIME, "When it was published."),
        Field("comments_count", Spelling.INT32, "Comments VK reports for the post, replies included."),
        Field("likes", Spelling.INT32, _LIKES),
        Field("reposts", Spelling.INT32, "Reposts, as of the last collection."),
        Field("views", Spelling.INT32, "Views, as of the last collection."),
        Field("is_pinned", Spelling.BOOLEAN, "Whether the post is pinned on the wall."),
        Field("group_id", Spelling.INT32, exposed=False),
        Field("url", Spelling.TEXT, "Link to the post on VK.",
              rule=Rule.text(f"{VK}/wall", Ref("owner_id"), "_", Ref("vk_id"))),
    ),
    relations=(
        Relation("group", "group", ("group_id",), ("id",), "groups_by_ids", "The community whose wall the post is on."),
    ),
)

AUTHOR = View(
    "author", "authors", "Author",
    fields=(
        Field("vk_id", Spelling.INT32, "VK id: positive for a user, negative for a community."),
        Field("name", Spelling.TEXT, "Full name of the user, or the community's name."),
        Field("screen_name", Spelling.TEXT, "Short address on VK, when known.", nullable=True),
        Field("photo_url", Spelling.TEXT, "Avatar image URL, when known.", nullable=True),
        Field("url", Spelling.TEXT, "Link to the author's VK page.", rule=Rule((
            (When(NON_EMPTY, "screen_name"), (f"{VK}/", Ref("screen_name"))),
            (When(POSITIVE, "vk_id"), (f"{VK}/id", Ref("vk_id"))),
            (None, (f"{VK}/club", Ref("vk_id", negate=True))),
        ))),
    ),
)

MATCH = View(
    "match", "matches", "KeywordMatch",
    fields=(
        Field("matched_text", Spelling.TEXT, "The text as it appears in the comment."),
        Field("start", Spelling.INT32, "Offset of the match's first character in the comment text.",
              column="start_pos"),
        Field("end", Spelling.INT32, "Offset just after the match's last character.", column="end_pos"),
        Field("snippet", Spelling.TEXT, "The match with some text around it."),
        Field("keyword_id", Spelling.INT32, exposed=False),
        Field("comment_id", Spelling.INT32, exposed=False),
    ),
    relations=(
        Relation("keyword", "keyword", ("keyword_id",), ("id",), "keywords_by_ids", "The keyword that matched."),
    ),
)

VERSION = View(
    "version", "comment_versions", "CommentVersion",
    fields=(
        Field("text", Spelling.TEXT, "The text as it was then."),
        Field("seen_at", Spelling.TIME, "When the collector first saw this text: for the oldest version, when the "
              "comment was first collected; for a later one, when that edit was noticed. It was replaced at the next "
              "version's `seenAt` (the last version: at the comment's `editedAt`)."),
    ),
)

KEYWORD = View(
    "keyword", "keywords", "Keyword",
    fields=(
        _id("Keyword"),
        Field("word", Spelling.TEXT, "The word or phrase."),
        Field("category", Spelling.TEXT, "A free-form group the keyword belongs to.", nullable=True),
        Field("active", Spelling.BOOLEAN, "Inactive keywords are kept but not matched."),
        Field("case_sensitive", Spelling.BOOLEAN, "Whether letter case must match."),
        Field("whole_word", Spelling.BOOLEAN, "Whether only whole words match (not parts of longer words)."),
        Field("morphology", Spelling.BOOLEAN, "Whether every Russian word form matches (кошка → кошками)."),
        Field("created_at", Spelling.TIME, "When the keyword was added.", nullable=True),
    ),
    relations=(
        Relation("matches_count", "", ("pk",), (), "keyword_matches_counts",
                 "How many matches of this keyword are stored (batched across keywords)."),
    ),
    unprojected={"matches_count": "a count per keyword (keyword_matches_counts), read when asked: no page writes it"},
)

GROUP = View(
    "group", "groups", "Group",
    fields=(
        _id("Group"),
        Field("vk_id", Spelling.INT32, "VK's id of the community (positive)."),
        Field("screen_name", Spelling.TEXT, "Short address, as in vk.com/<screenName>."),
        Field("name", Spelling.TEXT, "Display name."),
        Field("is_closed", Spelling.BOOLEAN, "Whether the community is closed or private on VK."),
        Field("members_count", Spelling.INT32, "Members, as of the last refresh.", nullable=True),
        Field("photo_url", Spelling.TEXT, "Avatar image URL.", nullable=True),
        Field("description", Spelling.TEXT, "The community's description on VK.", nullable=True),
        Field("deactivated", Spelling.TEXT, "Why VK blocked the community (`banned`, `deleted`), if it did.",
              nullable=True),
        Field("active", Spelling.BOOLEAN, "Inactive communities are kept but never collected."),
        Field("max_posts", Spelling.INT32, "How many of the newest posts a parse reads (null: all).", nullable=True),
        Field("since", Spelling.TIME, "A parse reads posts back to this date (null: no limit).", nullable=True),
        Field("created_at", Spelling.TIME, "When the community was added.", nullable=True),
        Field("updated_at", Spelling.TIME, "When this record last changed.", nullable=True),
        Field("url", Spelling.TEXT, "Link to the community on VK.", rule=Rule((
            (When(NON_EMPTY, "screen_name"), (f"{VK}/", Ref("screen_name"))),
            (None, (f"{VK}/club", Ref("vk_id"))),
        ))),
    ),
    unprojected={
        "monitoring": "an object made of several columns (graphql_api/groups.py's Monitoring), not a view",
        "comments_count": "a count over the comment filter, read per community when asked",
    },
)

def view_of(view: View, build: Callable[..., T], get: Callable[[str], Any]) -> T:
    """``build(**attributes)`` of every stored field of ``view``, read by column with ``get``."""
    return build(**{f.attribute: get(f.column) for f in view.fields if f.stored})


def declared_view(view: View) -> Callable[[type[T]], type[T]]:
    """A view's dataclass (apply below ``@dataclass``) gets an attribute (default None) for every
    stored field it does not spell out: a field added to the declaration is carried as it is."""

    def add(cls: type[T]) -> type[T]:
        if "__annotations__" not in vars(cls):
            cls.__annotations__ = {}
        annotations = cls.__annotations__  # the class's own, added to before @dataclass reads it
        for f in view.fields:
            if f.stored and f.attribute not in annotations:
                annotations[f.attribute] = "Any"
                setattr(cls, f.attribute, None)
        return cls

    return add


VIEWS: dict[str, View] = {v.name: v for v in (COMMENT, POST, AUTHOR, MATCH, VERSION, KEYWORD, GROUP)}
BY_TYPE: dict[str, View] = {v.type_name: v for v in VIEWS.values()}
