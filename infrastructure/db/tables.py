"""The database schema as SQLAlchemy Core tables, portable between SQLite and PostgreSQL.

The migrations in ``migrations/versions`` create exactly this schema (a test compares them).
One object lives only in the migrations: the PostgreSQL trigram index on folded comment text
(``POSTGRES_ONLY_INDEXES``), because SQLite has no equivalent.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

# Deterministic constraint names, so migrations can refer to them on every database.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Row ids: BIGINT on PostgreSQL; SQLite only auto-increments a column declared INTEGER.
Id = BigInteger().with_variant(Integer(), "sqlite")
JsonValue = JSON().with_variant(JSONB(), "postgresql")

# The comment filter's `text` on PostgreSQL: a GIN index on (group_id, the stored folded text
# ``comments.text_folded`` with trigrams) (migrations 0014, 0016), which serves LIKE '%word%'
# alone and, with btree_gin, a community's text search in the same scan. Operator classes
# Alembic cannot declare here; SQLite has none (it scans).
TEXT_SEARCH_INDEX = "ix_comments_text_search"
# The ``tags`` filter on PostgreSQL: a GIN index on the JSONB array serves ``tags ?| array[...]``.
# SQLite has no such index (its ``json_each`` reads the rows the other conditions leave).
TAGS_INDEX = "ix_comments_tags"
POSTGRES_ONLY_INDEXES = frozenset({TEXT_SEARCH_INDEX, TAGS_INDEX})


class UtcDateTime(TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out, on both databases.

    SQLite has no time zones: values are stored as naive UTC text, which also keeps their
    text order equal to their time order (keyset pagination relies on it).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _id() -> Column:
    return Column("id", Id, primary_key=True, autoincrement=True)


groups = Table(
    "groups",
    metadata,
    _id(),
    Column("vk_id", BigInteger, nullable=False, unique=True),
    Column("screen_name", String(255), nullable=False),
    Column("name", Text, nullable=False),
    Column("is_closed", Boolean, nullable=False, server_default=false()),
    Column("members_count", Integer),
    Column("photo_url", Text),
    Column("description", Text),
    Column("deactivated", String(32)),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("max_posts", Integer),
    Column("since", UtcDateTime),
    Column("monitor_enabled", Boolean, nullable=False, server_default=false()),
    Column("monitor_interval_minutes", Integer, nullable=False, server_default=text("60")),
    Column("monitor_priority", Integer, nullable=False, server_default=text("5")),
    Column("next_run_at", UtcDateTime),
    Column("last_run_at", UtcDateTime),
    Column("last_success_at", UtcDateTime),
    Column("last_error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

posts = Table(
    "posts",
    metadata,
    _id(),
    Column("group_id", Id, ForeignKey("groups.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("owner_id", BigInteger, nullable=False),
    Column("vk_id", BigInteger, nullable=False),
    Column("from_id", BigInteger),
    Column("text", Text, nullable=False),
    Column("published_at", UtcDateTime, nullable=False),
    Column("comments_count", Integer, nullable=False, server_default=text("0")),
    # The comments_count at which every comment was last collected; NULL: never fully read.
    Column("comments_synced_count", Integer),
    Column("likes", Integer, nullable=False, server_default=text("0")),
    Column("reposts", Integer, nullable=False, server_default=text("0")),
    Column("views", Integer, nullable=False, server_default=text("0")),
    Column("is_pinned", Boolean, nullable=False, server_default=false()),
    UniqueConstraint("owner_id", "vk_id"),
)

authors = Table(
    "authors",
    metadata,
    Column("vk_id", BigInteger, primary_key=True, autoincrement=False),
    Column("name", Text, nullable=False),
    Column("screen_name", String(255)),
    Column("photo_url", Text),
    Column("updated_at", UtcDateTime, nullable=False),
)

EDITED = "edited_at IS NOT NULL"
DELETED = "deleted"

comments = Table(
    "comments",
    metadata,
    _id(),
    Column("group_id", Id, ForeignKey("groups.id", ondelete="CASCADE"), nullable=False),
    Column("post_id", Id, ForeignKey("posts.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("owner_id", BigInteger, nullable=False),
    Column("vk_id", BigInteger, nullable=False),
    Column("post_vk_id", BigInteger, nullable=False),
    Column("thread_vk_id", BigInteger),
    Column("parent_vk_id", BigInteger),
    Column("reply_to_user", BigInteger),  # whom a reply answers, as VK says (migration 0017)
    Column("from_id", BigInteger, nullable=False),
    Column("text", Text, nullable=False),
    # ``domain.queries.fold_text(text)``, what the ``text`` filter compares (migration 0014):
    # written with the text by the comment upsert, so a search confirms a candidate with a plain
    # LIKE instead of folding every candidate's text again. Not a field of the API.
    Column("text_folded", Text, nullable=False, server_default=text("''")),
    Column("published_at", UtcDateTime, nullable=False),
    Column("likes", Integer, nullable=False, server_default=text("0")),
    Column("deleted", Boolean, nullable=False, server_default=false()),
    Column("viewed", Boolean, nullable=False, server_default=false()),
    Column("archived", Boolean, nullable=False, server_default=false()),
    # Denormalised count of rows in ``matches``, kept by MatchRepository: sorting and the
    # "matched" filter need it without a join.
    Column("matches_count", Integer, nullable=False, server_default=text("0")),
    Column("created_at", UtcDateTime, nullable=False),  # when it was first collected
    # History (migration 0009): when a re-read last found the text changed (the texts before are
    # in ``comment_versions``), and when the collector noticed the deletion (set with ``deleted``).
    Column("edited_at", UtcDateTime),
    Column("deleted_at", UtcDateTime),
    # The team's review workflow (migration 0013, ``domain.review``): a status of
    # ``domain.models.CommentStatus``, who it is assigned to (an API token's name), free labels
    # (a JSON array of strings, sorted, each once) and a note. Every change is in comment_events.
    Column("status", String(16), nullable=False, server_default=text("'NEW'")),
    Column("assignee", String(200)),
    Column("tags", JsonValue, nullable=False, server_default=text("'[]'")),
    Column("note", Text),
    UniqueConstraint("owner_id", "vk_id"),
    # One index per keyset order (key, id) the comments connection offers. The communities'
    # one carries the review state on PostgreSQL, so a count by communities, time and state
    # reads the index only.
    Index("ix_comments_group_id_published_at_id_state", "group_id", "published_at", "id",
          postgresql_include=["viewed", "archived"]),
    Index("ix_comments_published_at_id", "published_at", "id"),
    Index("ix_comments_likes_id", "likes", "id"),
    Index("ix_comments_matches_count_id", "matches_count", "id"),
    # A community's pages by likes or match count (migration 0018), either direction, with a text
    # filter or without: read in order off the community's part of the index instead of walking
    # the whole store's likes (or matches_count) index and filtering out other communities.
    Index("ix_comments_group_id_likes_id", "group_id", "likes", "id"),
    Index("ix_comments_group_id_matches_count_id", "group_id", "matches_count", "id"),
    Index("ix_comments_from_id", "from_id"),
    # The ``edited`` and ``deleted`` filters' pages: few comments of many, in the default order.
    Index("ix_comments_edited_published_at_id", "published_at", "id",
          postgresql_where=text(EDITED), sqlite_where=text(EDITED)),
    Index("ix_comments_deleted_published_at_id", "published_at", "id",
          postgresql_where=text(DELETED), sqlite_where=text(DELETED)),
    # The ``statuses`` and ``assignees`` filters' pages (a queue: one status, one person), in the
    # default order.
    Index("ix_comments_status_published_at_id", "status", "published_at", "id"),
    Index("ix_comments_assignee_published_at_id", "assignee", "published_at", "id"),
)

# The review workflow's audit trail, append-only (no API edits or deletes a row): one row per
# changed field per comment, written in the transaction that changes it (``domain.review``).
# ``actor`` is the API token's name; the values are as ``domain.review.event_value`` spells them.
comment_events = Table(
    "comment_events",
    metadata,
    _id(),
    Column("comment_id", Id, ForeignKey("comments.id", ondelete="CASCADE"), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("field", String(16), nullable=False),
    Column("old_value", Text),
    Column("new_value", Text),
    Index("ix_comment_events_comment_id_id", "comment_id", "id"),
)

# The texts a comment had before its current one, each with when it was first seen (the oldest:
# when the comment was first collected); written by the comment upsert when a re-read finds
# the text changed.
comment_versions = Table(
    "comment_versions",
    metadata,
    _id(),
    Column("comment_id", Id, ForeignKey("comments.id", ondelete="CASCADE"), nullable=False),
    Column("text", Text, nullable=False),
    Column("seen_at", UtcDateTime, nullable=False),
    Index("ix_comment_versions_comment_id_seen_at", "comment_id", "seen_at"),
)

keywords = Table(
    "keywords",
    metadata,
    _id(),
    Column("word", String(200), nullable=False),
    # domain.matching.keyword_key(word): casefolded, "ё" as "е"; de-duplicates keywords.
    Column("word_key", String(200), nullable=False, unique=True),
    Column("category", String(100)),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("case_sensitive", Boolean, nullable=False, server_default=false()),
    Column("whole_word", Boolean, nullable=False, server_default=text("true")),
    Column("morphology", Boolean, nullable=False, server_default=text("true")),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Saved rule-language queries (domain.rules), usable by name in filters: ``rule:<name>``.
rules = Table(
    "rules",
    metadata,
    _id(),
    Column("name", String(100), nullable=False),
    # domain.rules.rule_key(name): casefolded, spaces collapsed, "ё" as "е"; names are unique.
    Column("name_key", String(100), nullable=False, unique=True),
    Column("query", Text, nullable=False),
    Column("category", String(100)),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # The stored matches (rule_matches) of this rule: complete as of ``indexed_at``; NULL while
    # they are being (re)built, and readers then run the query instead. Every change that
    # invalidates them adds one to ``index_generation``: a rebuild that started before it
    # never marks the rule indexed (domain/rule_index.py).
    Column("indexed_at", UtcDateTime),
    Column("index_generation", Integer, nullable=False, server_default=text("0")),
)

# The comments each saved rule matches, written by the domain's matcher (``domain.rules.RuleSet``)
# in the transactions that write keyword matches, and rebuilt when a rule or what it names
# changes. A rule's comments newest first and its count are read off the index.
rule_matches = Table(
    "rule_matches",
    metadata,
    Column("rule_id", Id, ForeignKey("rules.id", ondelete="CASCADE"), nullable=False),
    Column("comment_id", Id, ForeignKey("comments.id", ondelete="CASCADE"), nullable=False),
    Column("published_at", UtcDateTime, nullable=False),  # the comment's
    PrimaryKeyConstraint("rule_id", "comment_id"),
    Index("ix_rule_matches_rule_id_published_at_comment_id", "rule_id", "published_at", "comment_id"),
    Index("ix_rule_matches_comment_id", "comment_id"),
)

matches = Table(
    "matches",
    metadata,
    Column("comment_id", Id, ForeignKey("comments.id", ondelete="CASCADE"), nullable=False),
    Column("keyword_id", Id, ForeignKey("keywords.id", ondelete="CASCADE"), nullable=False),
    Column("matched_text", Text, nullable=False),
    Column("start_pos", Integer, nullable=False),
    Column("end_pos", Integer, nullable=False),
    Column("snippet", Text, nullable=False),
    # The comment's, kept equal by the repositories: a keyword's comments newest first are read
    # off the index below, in order (the keywordIds filter's page), and counted from it alone.
    Column("published_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("comment_id", "keyword_id", "start_pos"),
    Index("ix_matches_keyword_id_published_at_comment_id", "keyword_id", "published_at", "comment_id"),
)

# Statistics kept up to date by the repositories, in the transactions that write comments and
# matches (infrastructure/db/aggregates.py), so ``stats`` reads a few small rows instead of
# scanning every comment. Rows of a removed group or keyword go with it (ON DELETE CASCADE).
stats_groups = Table(
    "stats_groups",
    metadata,
    Column("group_id", Id, ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True, autoincrement=False),
    Column("comments", BigInteger, nullable=False, server_default=text("0")),
    Column("replies", BigInteger, nullable=False, server_default=text("0")),
    Column("matched_comments", BigInteger, nullable=False, server_default=text("0")),
    Column("matches", BigInteger, nullable=False, server_default=text("0")),
    Column("posts", BigInteger, nullable=False, server_default=text("0")),
)

# Per UTC day of publication and group (a group's days leave with the group); with the review
# states, so the comment filter counts by communities, time and state from here
# (infrastructure/db/counts.py).
stats_days = Table(
    "stats_days",
    metadata,
    Column("day", Date, nullable=False),
    Column("group_id", Id, ForeignKey("groups.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("comments", BigInteger, nullable=False, server_default=text("0")),
    Column("matched_comments", BigInteger, nullable=False, server_default=text("0")),
    Column("matches", BigInteger, nullable=False, server_default=text("0")),
    Column("viewed", BigInteger, nullable=False, server_default=text("0")),
    Column("archived", BigInteger, nullable=False, server_default=text("0")),
    Column("viewed_archived", BigInteger, nullable=False, server_default=text("0")),
    PrimaryKeyConstraint("day", "group_id"),
)

# Comments per real author (from_id 0, VK's placeholder of deleted comments, is left out);
# a row exists only while the author has comments (stats_totals counts the rows).
stats_authors = Table(
    "stats_authors",
    metadata,
    Column("from_id", BigInteger, primary_key=True, autoincrement=False),
    Column("comments", BigInteger, nullable=False),
)
# The top authors' order (most comments first, then by id), read off the index.
Index("ix_stats_authors_comments_from_id", stats_authors.c.comments.desc(), stats_authors.c.from_id)

stats_keywords = Table(
    "stats_keywords",
    metadata,
    Column("keyword_id", Id, ForeignKey("keywords.id", ondelete="CASCADE"), primary_key=True, autoincrement=False),
    Column("matches", BigInteger, nullable=False, server_default=text("0")),
    Column("comments", BigInteger, nullable=False, server_default=text("0")),
)

# Totals that no other aggregate sums up: one row (aggregates.TOTALS_ROW).
stats_totals = Table(
    "stats_totals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("authors", BigInteger, nullable=False, server_default=text("0")),  # rows of stats_authors
)

ACTIVE_PARSE = "kind = 'PARSE' AND state IN ('QUEUED', 'RUNNING')"

tasks = Table(
    "tasks",
    metadata,
    _id(),
    Column("kind", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("priority", Integer, nullable=False, server_default=text("5")),
    Column("group_id", Id, ForeignKey("groups.id", ondelete="SET NULL")),
    Column("params", JsonValue, nullable=False),
    Column("progress_done", Integer, nullable=False, server_default=text("0")),
    Column("progress_total", Integer),
    Column("progress_message", Text, nullable=False, server_default=text("''")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("cancel_requested", Boolean, nullable=False, server_default=false()),
    Column("created_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime),
    Column("finished_at", UtcDateTime),
    Column("error", Text),
    Column("result", JsonValue),
    Column("updated_at", UtcDateTime),
    # The lease (migration 0002): the runner holding a RUNNING task and its last heartbeat.
    Column("worker_id", String(128)),
    Column("heartbeat_at", UtcDateTime),
    # Stalls (migration 0004): when progress last moved; when and how often it was found stuck.
    Column("progress_at", UtcDateTime),
    Column("stalled_at", UtcDateTime),
    Column("stalls", Integer, nullable=False, server_default=text("0")),
    # Waiting for VK (migration 0010): QUEUED until every token's rest ends; how often it waited.
    Column("waiting_until", UtcDateTime),
    Column("waits", Integer, nullable=False, server_default=text("0")),
    Index("ix_tasks_state", "state"),
    Index("ix_tasks_group_id_kind_state", "group_id", "kind", "state"),
    # One queued or running parse per community (migration 0003): racing starts cannot both win.
    Index("uq_tasks_one_active_parse", "group_id", unique=True,
          postgresql_where=text(ACTIVE_PARSE), sqlite_where=text(ACTIVE_PARSE)),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    _id(),
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("token_hash", String(128), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_used_at", UtcDateTime),
    Column("revoked_at", UtcDateTime),
)

# --- alerts (migration 0011) ------------------------------------------------------------------

alert_rules = Table(
    "alert_rules",
    metadata,
    _id(),
    Column("name", String(200), nullable=False),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("muted_until", UtcDateTime),
    Column("mode", String(16), nullable=False),
    # ``domain.alerts.filter_to_json`` of the rule's CommentFilter.
    Column("filter", JsonValue, nullable=False),
    Column("digest_minutes", Integer),
    Column("threshold_count", Integer),
    Column("threshold_minutes", Integer),
    Column("language", String(8), nullable=False, server_default=text("'en'")),
    # Names of ``domain.alerts.SystemEvent``: non-empty for a system rule (it ignores ``filter``).
    Column("system_events", JsonValue, nullable=False),
    # Signs the rule's webhooks (Standard Webhooks ``whsec_...``): shown once, stored sealed
    # (infrastructure/sealed.py), never read back out.
    Column("webhook_secret", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

alert_channels = Table(
    "alert_channels",
    metadata,
    _id(),
    Column("rule_id", Id, ForeignKey("alert_rules.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("url", Text, nullable=False),  # secrets inside: stored sealed, never returned, never logged
    Column("masked", Text, nullable=False),
    Index("ix_alert_channels_rule_id", "rule_id"),
)

# The outbox: one row per rule, channel and event (a matched comment, a system event), written
# in the transaction that stores the match; unique, so nothing is alerted twice.
alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    _id(),
    Column("rule_id", Id, ForeignKey("alert_rules.id", ondelete="CASCADE"), nullable=False),
    Column("channel_id", Id, ForeignKey("alert_channels.id", ondelete="CASCADE"), nullable=False),
    Column("comment_id", Id, ForeignKey("comments.id", ondelete="CASCADE")),
    Column("event_key", String(200), nullable=False),  # "c<comment id>", or a system event's key
    Column("event", JsonValue),  # a system event's details
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime),
    # The message it went out in (the webhook-id); set when it is claimed, kept across retries.
    Column("message_id", String(64)),
    Column("lease_owner", String(128)),
    Column("lease_until", UtcDateTime),
    UniqueConstraint("rule_id", "channel_id", "event_key"),
    Index("ix_alert_deliveries_state_next_attempt_at", "state", "next_attempt_at"),
    Index("ix_alert_deliveries_comment_id", "comment_id"),
    Index("ix_alert_deliveries_channel_id", "channel_id"),
)
