"""The ``stats`` query and the admin-only ``vkTokens`` field: types and resolvers.

``schema.py`` mounts the resolvers on ``Query``; the numbers come from ``domain.stats``.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Annotated

import strawberry

from domain import queries
from domain import stats as stats_cases
from graphql_api.context import Info
from graphql_api.ids import NodeType, global_id
from graphql_api.types import Group

# --- stats ----------------------------------------------------------------------------------


@strawberry.type(description="Counts over everything stored.")
class StatsTotals:
    groups: int = strawberry.field(description="Tracked communities.")
    posts: int = strawberry.field(description="Stored wall posts.")
    comments: int = strawberry.field(description="Stored comments, replies included.")
    replies: int = strawberry.field(description="Stored replies (comments inside a thread).")
    matched_comments: int = strawberry.field(description="Comments with at least one keyword match.")
    matches: int = strawberry.field(description="Keyword matches, all comments together.")
    authors: int = strawberry.field(description="Distinct comment authors.")
    keywords: int = strawberry.field(description="Keywords, active or not.")


@strawberry.type(description="Counts for one community.")
class GroupStats:
    group_id: strawberry.ID = strawberry.field(description="Id of the community (its global id, as `Group.id`).")
    group_pk: strawberry.Private[int]
    name: str = strawberry.field(description="The community's name.")
    comments: int = strawberry.field(description="Stored comments of the community, replies included.")
    matched_comments: int = strawberry.field(description="Those with at least one keyword match.")
    last_collected_at: datetime | None = strawberry.field(description="When its last collection succeeded.")

    @strawberry.field(description="The community itself.")
    async def group(self, info: Info) -> Group | None:
        found = await info.context.loaders(info).group.load(self.group_pk)
        return Group.from_domain(found) if found is not None else None


@strawberry.type(description="A keyword and how often it matched.")
class KeywordStats:
    keyword_id: strawberry.ID = strawberry.field(description="Id of the keyword (its global id, as `Keyword.id`).")
    word: str = strawberry.field(description="The keyword.")
    matches: int = strawberry.field(description="Its stored matches.")
    comments: int = strawberry.field(description="Distinct comments it matched.")


@strawberry.type(description="A comment author and how many comments they wrote.")
class AuthorStats:
    vk_id: int = strawberry.field(description="VK id of the author: positive for a user, negative for a community.")
    name: str | None = strawberry.field(description="The author's name, when known.")
    comments: int = strawberry.field(description="Stored comments by this author.")


@strawberry.type(description="Counts of one day (UTC), by the comments' publication time.")
class DayStats:
    day: date = strawberry.field(description="The day (UTC).")
    comments: int = strawberry.field(description="Comments published that day.")
    matched_comments: int = strawberry.field(description="Those with at least one keyword match.")
    matches: int = strawberry.field(description="Keyword matches in those comments.")


@strawberry.type(description="Statistics of the stored data (cached briefly; refreshed whenever a task finishes).")
class Stats:
    since: date = strawberry.field(description="First day of `days`.")
    until: date = strawberry.field(description="Last day of `days`.")
    totals: StatsTotals = strawberry.field(description="Counts over everything stored.")
    groups: list[GroupStats] = strawberry.field(description="Per community, in the order they were added.")
    top_keywords: list[KeywordStats] = strawberry.field(description="Keywords with the most matches.")
    top_authors: list[AuthorStats] = strawberry.field(description="Authors with the most comments.")
    days: list[DayStats] = strawberry.field(
        description="Comments and matches per day from `since` to `until`, oldest first, days without any included."
    )

    @classmethod
    def from_domain(cls, s: queries.Stats, window: queries.StatsWindow) -> Stats:
        return cls(
            since=window.since,
            until=window.until,
            totals=StatsTotals(**vars(s.totals)),
            groups=[
                GroupStats(
                    group_id=global_id(NodeType.GROUP, g.group_id),
                    group_pk=g.group_id,
                    name=g.name,
                    comments=g.comments,
                    matched_comments=g.matched_comments,
                    last_collected_at=g.last_collected_at,
                )
                for g in s.groups
            ],
            top_keywords=[
                KeywordStats(keyword_id=global_id(NodeType.KEYWORD, k.keyword_id), word=k.word, matches=k.matches, comments=k.comments)
                for k in s.top_keywords
            ],
            top_authors=[AuthorStats(vk_id=a.vk_id, name=a.name, comments=a.comments) for a in s.top_authors],
            days=[DayStats(**vars(d)) for d in s.days],
        )


async def resolve_stats(
    info: Info,
    since: Annotated[
        date | None, strawberry.argument(description="First day of the per-day series (UTC); default: 30 days before `until`.")
    ] = None,
    until: Annotated[
        date | None, strawberry.argument(description="Last day of the per-day series (UTC); default: today. At most 366 days.")
    ] = None,
    top: Annotated[int, strawberry.argument(description="Length of the top keyword and author lists (1–100).")] = (
        stats_cases.DEFAULT_TOP
    ),
) -> Stats:
    window = stats_cases.stats_window(datetime.now(UTC).date(), since=since, until=until, top=top)
    found = await stats_cases.read_stats(info.context.read_model, info.context.adapters.cache, window)
    return Stats.from_domain(found, window)


# --- VK tokens (admin only) -----------------------------------------------------------------


@strawberry.enum(description="Whether a VK token of the pool is in use.")
class VkTokenState(enum.Enum):
    ACTIVE = strawberry.enum_value("ACTIVE", description="In use.")
    PARKED = strawberry.enum_value("PARKED", description="Resting after a quota or captcha, until `parkedUntil`.")
    REVOKED = strawberry.enum_value("REVOKED", description="Rejected by VK (expired, revoked): not used again.")


@strawberry.type(description="A VK token of the pool, as operators may see it: never the token itself.")
class VkToken:
    fingerprint: str = strawberry.field(description="A short, non-reversible fingerprint identifying the token.")
    state: VkTokenState = strawberry.field(description="Whether it is in use, resting or rejected.")
    parked_until: datetime | None = strawberry.field(description="When a PARKED token is used again.")
    reason: str | None = strawberry.field(description="Why the token is parked or revoked.")
    requests: int = strawberry.field(description="Requests sent with it since the process started.")


async def resolve_vk_tokens(info: Info) -> list[VkToken]:
    vk = info.context.adapters.vk
    states = await vk.token_states() if hasattr(vk, "token_states") else []
    return [
        VkToken(
            fingerprint=s.fingerprint,
            state=VkTokenState(str(getattr(s.status, "value", s.status))),
            parked_until=s.until,
            reason=s.reason,
            requests=s.requests,
        )
        for s in states
    ]
