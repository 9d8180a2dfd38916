"""The ``stats`` query, the admin-only ``vkTokens`` field and ``vkBudget``: types and resolvers.

``schema.py`` mounts the fields on ``Query``; the numbers come from ``domain.stats`` and
``domain.budget``.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from domain import budget as budget_cases
from domain import queries
from domain import stats as stats_cases
from domain.vk import TokenStatus
from graphql_api.auth import IsAdmin
from graphql_api.comments import CommentStatus
from graphql_api.context import Info
from graphql_api.groups import Group
from graphql_api.ids import NodeType, global_id

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


@strawberry.type(description="How many comments are in one review status.")
class StatusStats:
    status: CommentStatus = strawberry.field(description="The status.")
    comments: int = strawberry.field(description="Comments in it, replies included.")
@strawberry.type(description="A saved rule and how many stored comments match it.")
class RuleStats:
    rule_id: strawberry.ID = strawberry.field(description="Id of the rule (as `Rule.id`).")
    name: str = strawberry.field(description="The rule's name.")
    comments: int = strawberry.field(description="Stored comments its query matches now.")


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
    by_status: list[StatusStats] = strawberry.field(
        description="Comments per review status, every status listed (refreshed at once when a status changes)."
    )
    top: strawberry.Private[int] = 10

    @strawberry.field(
        description="Saved rules with the most matching comments (all stored comments, the top `top`). Not cached: "
        "counted from each rule's stored matches (see `Rule.indexedAt`); the rules whose matches are being stored "
        "run their queries, all of them in one pass over the comments that may match any."
    )
    async def top_rules(self, info: Info) -> list[RuleStats]:
        store = info.context.adapters.rules
        if store is None:
            return []
        saved = await store.list_rules()
        counts = await info.context.read_model.rule_counts([f'rule:"{r.name}"' for r in saved])
        ranked = sorted(zip(saved, counts), key=lambda pair: (-pair[1], pair[0].name))[: self.top]
        return [RuleStats(rule_id=global_id(NodeType.RULE, r.id), name=r.name, comments=n) for r, n in ranked]

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
                KeywordStats(
                    keyword_id=global_id(NodeType.KEYWORD, k.keyword_id), word=k.word, matches=k.matches,
                    comments=k.comments,
                )
                for k in s.top_keywords
            ],
            top_authors=[AuthorStats(vk_id=a.vk_id, name=a.name, comments=a.comments) for a in s.top_authors],
            days=[DayStats(**vars(d)) for d in s.days],
            by_status=[StatusStats(status=CommentStatus[b.status.name], comments=b.comments) for b in s.by_status],
            top=window.top,
        )


async def resolve_stats(
    info: Info,
    since: Annotated[
        date | None,
        strawberry.argument(description="First day of the per-day series (UTC); default: 30 days before `until`."),
    ] = None,
    until: Annotated[
        date | None,
        strawberry.argument(description="Last day of the per-day series (UTC); default: today. At most 366 days."),
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


@strawberry.type(description="One VK method's calls today (UTC) with one token, against VK's daily limit.")
class VkMethodQuota:
    method: str = strawberry.field(description="The VK API method, e.g. `wall.get`.")
    calls: int = strawberry.field(description="Calls made today (UTC day), by every process using the token.")
    limit: int | None = strawberry.field(
        description="Calls VK allows per token per day (`VKCP_VK_DAILY_LIMITS`); null when not known."
    )
    remaining: int | None = strawberry.field(description="`limit` less `calls` (never below 0); null when not known.")

    @classmethod
    def from_domain(cls, q: budget_cases.MethodQuota) -> VkMethodQuota:
        return cls(method=q.method, calls=q.calls, limit=q.limit, remaining=q.remaining)


@strawberry.type(description="A VK token of the pool, as operators may see it: never the token itself.")
class VkToken:
    fingerprint: str = strawberry.field(description="A short, non-reversible fingerprint identifying the token.")
    state: VkTokenState = strawberry.field(description="Whether it is in use, resting or rejected.")
    parked_until: datetime | None = strawberry.field(description="When a PARKED token is used again.")
    reason: str | None = strawberry.field(description="Why the token is parked or revoked.")
    requests: int = strawberry.field(description="Requests sent with it since the process started.")
    calls_today: int = strawberry.field(
        description="VK API calls made with it today (UTC day), every method and every process together; each "
        "call inside an `execute` counts."
    )
    calls_remaining: int | None = strawberry.field(
        description="Calls left today of the method with a known limit that has the fewest left; null when no "
        "limit is known."
    )
    quotas: list[VkMethodQuota] = strawberry.field(
        description="Per method: today's calls, and the limit and what is left where known."
    )


async def resolve_vk_tokens(info: Info) -> list[VkToken]:
    states = await info.context.adapters.vk.token_states()
    limits = info.context.adapters.vk_daily_limits
    tokens = []
    for s in states:
        quotas = budget_cases.method_quotas(s.calls_today, limits)
        tokens.append(VkToken(
            fingerprint=s.fingerprint,
            state=VkTokenState(s.status.value),
            parked_until=s.until,
            reason=s.reason,
            requests=s.requests,
            calls_today=sum(q.calls for q in quotas),
            calls_remaining=budget_cases.calls_remaining(quotas),
            quotas=[VkMethodQuota.from_domain(q) for q in quotas],
        ))
    return tokens


# --- the monitoring schedule's VK budget ----------------------------------------------------


@strawberry.type(description="Calls of one VK method a day: what the schedule needs against what the pool allows.")
class VkMethodBudget:
    method: str = strawberry.field(description="The VK API method, e.g. `wall.get`.")
    limit_per_token: int | None = strawberry.field(
        description="Calls VK allows one token a day (`VKCP_VK_DAILY_LIMITS`); null when not known."
    )
    limit: int | None = strawberry.field(
        description="Calls the pool allows a day: usable tokens × `limitPerToken`; null when not known."
    )
    projected_calls: int = strawberry.field(description="Calls the monitoring schedule is projected to make a day.")
    fits: bool = strawberry.field(
        description="Whether `projectedCalls` is within `limit` (true when no limit is known)."
    )


@strawberry.type(description="A VK method and a number of calls.")
class VkMethodCalls:
    method: str = strawberry.field(description="The VK API method.")
    calls: int = strawberry.field(description="Calls.")


@strawberry.type(description="One monitored community's share of the schedule's VK calls.")
class VkBudgetCommunity:
    group_pk: strawberry.Private[int]
    runs_per_day: float = strawberry.field(description="Monitoring runs a day: 1440 / its interval in minutes.")
    calls_per_run: int = strawberry.field(description="VK calls one run costs, every method together.")
    calls_per_run_by_method: list[VkMethodCalls] = strawberry.field(description="`callsPerRun` per method.")
    projected_calls: int = strawberry.field(description="VK calls a day: `runsPerDay` × `callsPerRun`.")
    estimated: bool = strawberry.field(
        description="True when the community has not run yet: `callsPerRun` is guessed from its `maxPosts` "
        "(100 posts when unbounded), not measured."
    )

    @strawberry.field(description="The community.")
    async def group(self, info: Info) -> Group | None:
        found = await info.context.loaders(info).group.load(self.group_pk)
        return Group.from_domain(found) if found is not None else None


@strawberry.enum(
    description="What `VkBudget.warning` says, for a client that words it in its own language "
    "(`VkBudget.warningArgs` holds its numbers and names; `warning` is the English sentence)."
)
class VkBudgetWarningCode(enum.Enum):
    NO_USABLE_TOKEN = strawberry.enum_value(
        "NO_USABLE_TOKEN", description="No usable VK token: `short` lists each method that does not fit as "
        "`{method, calls}`, the calls a day the schedule needs of it. Add tokens."
    )
    TOKENS_SHORT = strawberry.enum_value(
        "TOKENS_SHORT", description="The pool is too small: `short` lists each method that does not fit as "
        "`{method, calls, limit}` (the calls a day the schedule needs, what `usableTokens` tokens allow); "
        "`addTokens` more tokens would make every method fit (or lengthen the monitoring intervals)."
    )


@strawberry.type(
    description="The monitoring schedule's projected VK calls a day against the token pool's daily budget. "
    "A community's calls per run are the average of its last successful runs (measured per method); "
    "the pool's budget is usable tokens (not revoked) × VK's daily limit per method."
)
class VkBudget:
    usable_tokens: int = strawberry.field(description="VK tokens not revoked (parked ones come back).")
    methods: list[VkMethodBudget] = strawberry.field(
        description="Per method: the daily limit and the projected calls (methods called or with a known limit)."
    )
    projected_calls: int = strawberry.field(description="Projected VK calls a day, every method together.")
    fits: bool = strawberry.field(description="Whether every method's projected calls fit in its daily limit.")
    warning: str | None = strawberry.field(
        description="What to change when the schedule cannot be met with the tokens configured, for people "
        "(in English); null when it fits."
    )
    warning_code: VkBudgetWarningCode | None = strawberry.field(
        description="What `warning` says, as a code to word in another language; null when it fits."
    )
    warning_args: JSON | None = strawberry.field(
        description="The numbers and names `warning` holds, by name (see `warningCode`); null when it fits."
    )
    communities: list[VkBudgetCommunity] = strawberry.field(
        description="Each active monitored community, in the order they were added."
    )

    @classmethod
    def from_domain(cls, b: budget_cases.Budget) -> VkBudget:
        return cls(
            usable_tokens=b.usable_tokens,
            methods=[VkMethodBudget(method=m.method, limit_per_token=m.limit_per_token, limit=m.limit,
                                    projected_calls=m.projected, fits=m.fits) for m in b.methods],
            projected_calls=b.projected,
            fits=b.fits,
            warning=str(b.warning) if b.warning is not None else None,
            warning_code=VkBudgetWarningCode[b.warning.code.value] if b.warning is not None else None,
            warning_args=JSON(dict(b.warning.args)) if b.warning is not None else None,
            communities=[
                VkBudgetCommunity(
                    group_pk=c.group.id or 0,
                    runs_per_day=round(c.runs_per_day, 3),
                    calls_per_run=sum(c.calls_per_run.values()),
                    calls_per_run_by_method=[VkMethodCalls(method=m, calls=n) for m, n in c.calls_per_run.items()],
                    projected_calls=sum(c.projected.values()),
                    estimated=c.estimated,
                )
                for c in b.communities
            ],
        )


async def resolve_vk_budget(info: Info) -> VkBudget:
    states = await info.context.adapters.vk.token_states()
    usable = sum(1 for s in states if s.status is not TokenStatus.REVOKED)
    found = await budget_cases.read_budget(
        info.context.adapters.uow_factory, info.context.read_model,
        usable_tokens=usable, limits=info.context.adapters.vk_daily_limits,
    )
    return VkBudget.from_domain(found)


stats = strawberry.field(
    resolver=resolve_stats,
    description="Statistics: totals, per community, top keywords and authors, comments and matches per day.",
)
vk_tokens = strawberry.field(
    resolver=resolve_vk_tokens,
    description="The VK token pool's state (fingerprints, never the tokens). Admins only.",
    permission_classes=[IsAdmin],
)
vk_budget = strawberry.field(
    resolver=resolve_vk_budget,
    description="The monitoring schedule's projected VK calls a day against what the token pool may call "
    "(token counts only, never which token).",
)
