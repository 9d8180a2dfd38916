"""VK's daily quotas as a budget: what a token has left today, and whether the monitoring
schedule fits in what the token pool may call in a day.

VK limits calls per token, per method and per day (``wall.get``: about 5,000, documented;
the others exist but are not published) and answers error 29 past them. So:

- each token's calls today, per method, against the configured limits give its ``quotas``
  (``method_quotas``); a method with no known limit has none (``remaining`` None);
- the schedule's projected calls a day are, for each active monitored community, its runs a
  day (1440 / interval minutes) × the calls one of its runs costs. That cost comes from its
  last successful runs (a PARSE task's ``result["vkCalls"]``, measured by ``count_vk_calls``);
  a run recorded before calls were measured is read from its post counts, and a community
  never run yet is estimated as a parse of its ``max_posts`` (``ESTIMATE_POSTS`` when
  unbounded). The first, full run of a community counts like the later incremental ones, so
  a new schedule's projection errs high;
- the pool's budget is, per method with a known limit, usable tokens (not revoked: parked ones
  come back) × that limit. ``warning`` says what to change when the projection exceeds it: a
  ``BudgetWarning``, the English sentence as a ``str`` that also carries a code and arguments
  (like ``domain.progress.Say``), from which the console words it in the operator's language.

``count_vk_calls`` is the meter: while a use case runs inside it, the VK adapter adds each
call it sends on that use case's behalf, so parses sharing one gateway are told apart.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Self

from domain.models import Group
from domain.ports import UnitOfWorkFactory
from domain.queries import ReadModel

MINUTES_A_DAY = 1440
RECENT_RUNS = 5  # successful runs whose cost is averaged
ESTIMATE_POSTS = 100  # posts a never-run community without max_posts is assumed to have
PAGE = 100  # posts or comments per VK page
DOCUMENTED_LIMITS = {"wall.get": 5000}  # VK's own figure; the others are not published

# --- the meter ------------------------------------------------------------------------------

_meter: ContextVar[Counter[str] | None] = ContextVar("vk_calls_meter", default=None)


@contextmanager
def count_vk_calls() -> Iterator[Counter[str]]:
    """Calls by method that VK is sent for whatever runs inside (tasks it starts included)."""
    calls: Counter[str] = Counter()
    token = _meter.set(calls)
    try:
        yield calls
    finally:
        _meter.reset(token)


def vk_calls_meter() -> Counter[str] | None:
    """The meter of the running context, for an adapter to add the calls it sends for it."""
    return _meter.get()


# --- a token's quotas -----------------------------------------------------------------------


@dataclass(frozen=True)
class MethodQuota:
    method: str
    calls: int  # today (UTC)
    limit: int | None  # per token per day; None: not known
    remaining: int | None


def method_quotas(calls: Mapping[str, int], limits: Mapping[str, int]) -> list[MethodQuota]:
    """Every method called today or with a known limit, by name."""
    quotas = []
    for method in sorted(set(calls) | set(limits)):
        used, limit = calls.get(method, 0), limits.get(method)
        quotas.append(MethodQuota(method, used, limit, None if limit is None else max(0, limit - used)))
    return quotas


def calls_remaining(quotas: Sequence[MethodQuota]) -> int | None:
    """The fewest calls left among the methods with a known limit (the first to run out)."""
    known = [q.remaining for q in quotas if q.remaining is not None]
    return min(known) if known else None


# --- the schedule's budget ------------------------------------------------------------------


@dataclass(frozen=True)
class CommunityProjection:
    group: Group
    runs_per_day: float
    calls_per_run: dict[str, int]  # by method
    estimated: bool  # never run: calls_per_run is a guess from max_posts

    @property
    def projected(self) -> dict[str, int]:
        return {m: math.ceil(n * self.runs_per_day) for m, n in self.calls_per_run.items()}


@dataclass(frozen=True)
class MethodBudget:
    method: str
    limit_per_token: int | None
    limit: int | None  # the pool's: usable tokens × limit_per_token
    projected: int

    @property
    def fits(self) -> bool:
        return self.limit is None or self.projected <= self.limit


@dataclass(frozen=True)
class Budget:
    usable_tokens: int
    methods: list[MethodBudget]
    communities: list[CommunityProjection] = field(default_factory=list)
    warning: BudgetWarning | None = None

    @property
    def fits(self) -> bool:
        return all(m.fits for m in self.methods)

    @property
    def projected(self) -> int:
        return sum(m.projected for m in self.methods)


def calls_per_run(group: Group, recent_results: Sequence[Mapping[str, Any]]) -> tuple[dict[str, int], bool]:
    """What one run of the community costs, by method; True when it is only an estimate."""
    measured = [r["vkCalls"] for r in recent_results if isinstance(r.get("vkCalls"), Mapping)]
    if measured:
        runs = measured[:RECENT_RUNS]
        methods = set().union(*runs)
        return {m: math.ceil(sum(int(r.get(m, 0)) for r in runs) / len(runs)) for m in sorted(methods)}, False
    counted = [r for r in recent_results if "posts" in r and "postsRead" in r][:RECENT_RUNS]
    if counted:  # a run from before calls were measured: one wall page per 100 posts, one comments page per post read
        return {
            "wall.get": math.ceil(sum(max(1, math.ceil(r["posts"] / PAGE)) for r in counted) / len(counted)),
            "wall.getComments": math.ceil(sum(r["postsRead"] for r in counted) / len(counted)),
        }, False
    posts = group.max_posts or ESTIMATE_POSTS
    return {"wall.get": max(1, math.ceil(posts / PAGE)), "wall.getComments": posts}, True


def project_budget(
    groups: Sequence[Group],
    recent_results: Mapping[int, Sequence[Mapping[str, Any]]],
    *,
    usable_tokens: int,
    limits: Mapping[str, int],
) -> Budget:
    """The monitoring schedule's calls a day against what ``usable_tokens`` may call.

    ``recent_results``: group id → the results of its last successful parses, newest first.
    """
    communities = []
    for group in groups:
        if not (group.active and group.monitor_enabled) or group.id is None:
            continue
        per_run, estimated = calls_per_run(group, recent_results.get(group.id, ()))
        runs = MINUTES_A_DAY / max(1, group.monitor_interval_minutes)
        communities.append(CommunityProjection(group, runs, per_run, estimated))
    projected: Counter[str] = Counter()
    for community in communities:
        projected.update(community.projected)
    methods = [
        MethodBudget(m, limits.get(m), usable_tokens * limits[m] if m in limits else None, projected[m])
        for m in sorted(set(projected) | set(limits))
    ]
    return Budget(usable_tokens, methods, communities, _warning(methods, usable_tokens))


class WarningCode(StrEnum):
    # No usable token at all. args: short = [{method, calls}], the methods that do not fit and
    # the calls a day the schedule needs of each.
    NO_USABLE_TOKEN = "NO_USABLE_TOKEN"
    # The pool is too small. args: short = [{method, calls, limit}] (limit: what the pool allows
    # a day), usableTokens, addTokens: the tokens more that would make every method fit.
    TOKENS_SHORT = "TOKENS_SHORT"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def _english(code: WarningCode, args: Mapping[str, Any]) -> str:
    short = args["short"]
    if code is WarningCode.NO_USABLE_TOKEN:
        needs = "; ".join(f"~{m['calls']:,} {m['method']} calls a day" for m in short)
        return f"no usable VK token: the schedule needs {needs}. Add tokens (VKCP_VK_TOKENS)."
    tokens = _plural(args["usableTokens"], "token")
    parts = [
        f"the schedule needs ~{m['calls']:,} {m['method']} calls a day; {tokens} allow {m['limit']:,}" for m in short
    ]
    return f"{'; '.join(parts)}: add {_plural(args['addTokens'], 'token')} or lengthen intervals"


class BudgetWarning(str):
    """What the schedule lacks: a ``str`` (its English sentence, what ``warning`` has always
    said) that also carries its code and arguments, for a reader that words it otherwise."""

    code: WarningCode
    args: Mapping[str, Any]

    def __new__(cls, code: WarningCode, args: Mapping[str, Any]) -> Self:
        said = super().__new__(cls, _english(code, args))
        said.code, said.args = code, dict(args)
        return said

    def __getnewargs__(self) -> tuple[WarningCode, dict[str, Any]]:  # type: ignore[override]  # copy, pickle
        return self.code, dict(self.args)

    def __repr__(self) -> str:
        return f"BudgetWarning({self.code.value}, {dict(self.args)!r})"


def _warning(methods: Sequence[MethodBudget], usable_tokens: int) -> BudgetWarning | None:
    """The one home of the rule: which methods do not fit and how many tokens more would do."""
    short = [m for m in methods if not m.fits]
    if not short:
        return None
    if usable_tokens == 0:
        return BudgetWarning(
            WarningCode.NO_USABLE_TOKEN, {"short": [{"method": m.method, "calls": m.projected} for m in short]}
        )
    more = 0
    for m in short:
        assert m.limit is not None and m.limit_per_token
        more = max(more, math.ceil(m.projected / m.limit_per_token) - usable_tokens)
    return BudgetWarning(
        WarningCode.TOKENS_SHORT,
        {
            "short": [{"method": m.method, "calls": m.projected, "limit": m.limit} for m in short],
            "usableTokens": usable_tokens,
            "addTokens": more,
        },
    )


async def read_budget(
    uow_factory: UnitOfWorkFactory, read_model: ReadModel, *, usable_tokens: int, limits: Mapping[str, int]
) -> Budget:
    """The budget of the schedule as stored now."""
    async with uow_factory() as uow:
        groups = [g for g in await uow.groups.list(active=True) if g.monitor_enabled and g.id is not None]
    results = await read_model.recent_parse_results([g.id for g in groups if g.id is not None], RECENT_RUNS)
    return project_budget(groups, results, usable_tokens=usable_tokens, limits=limits)
