"""The quota budget's rules: a token's quotas today, and the monitoring schedule's projected
calls a day against what the pool's tokens may call."""

from __future__ import annotations

import asyncio
import copy
import pickle

from domain.budget import (
    BudgetWarning,
    WarningCode,
    calls_per_run,
    calls_remaining,
    count_vk_calls,
    method_quotas,
    project_budget,
    vk_calls_meter,
)
from domain.models import Group
from graphql_api.stats import VkBudget, VkBudgetWarningCode

LIMITS = {"wall.get": 5000}


def monitored(group_id: int, interval: int, *, max_posts: int | None = None, active: bool = True,
              enabled: bool = True) -> Group:
    return Group(vk_id=group_id, screen_name=f"club{group_id}", name=f"Community {group_id}", id=group_id,
                 active=active, monitor_enabled=enabled, monitor_interval_minutes=interval, max_posts=max_posts)


def test_quotas_list_called_and_limited_methods_with_what_is_left():
    quotas = method_quotas({"wall.getComments": 700, "wall.get": 5200}, LIMITS)
    assert [(q.method, q.calls, q.limit, q.remaining) for q in quotas] == [
        ("wall.get", 5200, 5000, 0), ("wall.getComments", 700, None, None)]
    assert calls_remaining(quotas) == 0
    assert calls_remaining(method_quotas({"wall.getComments": 3}, {})) is None
    fresh = method_quotas({}, {"wall.get": 5000, "wall.getComments": 9000})
    assert calls_remaining(fresh) == 5000  # the method that runs out first


def test_the_schedule_that_does_not_fit_says_what_to_change():
    # 20 communities every 15 minutes, each run 10 wall.get: 20 x 96 x 10 = 19,200 a day.
    groups = [monitored(i, 15) for i in range(1, 21)]
    results = {g.id: [{"vkCalls": {"wall.get": 10, "wall.getComments": 40}}] for g in groups}
    budget = project_budget(groups, results, usable_tokens=2, limits=LIMITS)
    wall = next(m for m in budget.methods if m.method == "wall.get")
    assert (wall.projected, wall.limit, wall.fits) == (19_200, 10_000, False)
    assert not budget.fits
    assert budget.warning == (
        "the schedule needs ~19,200 wall.get calls a day; 2 tokens allow 10,000: add 2 tokens or lengthen intervals"
    )
    # the same as a code with arguments, for the console to word in its language
    assert budget.warning.code is WarningCode.TOKENS_SHORT
    assert budget.warning.args == {
        "short": [{"method": "wall.get", "calls": 19_200, "limit": 10_000}], "usableTokens": 2, "addTokens": 2}
    comments = next(m for m in budget.methods if m.method == "wall.getComments")
    assert comments.limit is None and comments.fits and comments.projected == 76_800
    assert budget.projected == 19_200 + 76_800

    enough = project_budget(groups, results, usable_tokens=4, limits=LIMITS)
    assert enough.fits and enough.warning is None


def test_calls_per_run_average_the_last_runs_and_estimate_the_never_run():
    group = monitored(1, 60, max_posts=250)
    runs = [{"vkCalls": {"wall.get": 1, "wall.getComments": 10}}, {"vkCalls": {"wall.get": 3, "users.get": 1}}]
    assert calls_per_run(group, runs) == ({"users.get": 1, "wall.get": 2, "wall.getComments": 5}, False)
    # A run recorded before calls were measured: read from its post counts.
    assert calls_per_run(group, [{"posts": 150, "postsRead": 12}]) == ({"wall.get": 2, "wall.getComments": 12}, False)
    # Never run: a parse of its max_posts (100 when unbounded).
    assert calls_per_run(group, []) == ({"wall.get": 3, "wall.getComments": 250}, True)
    assert calls_per_run(monitored(2, 60), []) == ({"wall.get": 1, "wall.getComments": 100}, True)


def test_only_active_monitored_communities_count_and_no_token_is_a_warning():
    groups = [monitored(1, 60), monitored(2, 1440), monitored(3, 5, active=False), monitored(4, 5, enabled=False)]
    budget = project_budget(groups, {1: [{"vkCalls": {"wall.get": 2}}]}, usable_tokens=0, limits=LIMITS)
    assert [(c.group.id, c.runs_per_day, c.estimated) for c in budget.communities] == [(1, 24, False), (2, 1, True)]
    assert [c.projected for c in budget.communities] == [{"wall.get": 48}, {"wall.get": 1, "wall.getComments": 100}]
    assert budget.warning == (
        "no usable VK token: the schedule needs ~49 wall.get calls a day. Add tokens (VKCP_VK_TOKENS)."
    )
    assert budget.warning.code is WarningCode.NO_USABLE_TOKEN
    assert budget.warning.args == {"short": [{"method": "wall.get", "calls": 49}]}
    assert project_budget([], {}, usable_tokens=0, limits=LIMITS).fits


def test_a_warning_is_its_english_sentence_and_its_code_with_arguments():
    # two methods short on one token: the tokens to add are what the shortest of them needs
    groups = [monitored(1, 1)]  # 1,440 runs a day
    results = {1: [{"vkCalls": {"wall.get": 1, "wall.getComments": 3}}]}
    limits = {"wall.get": 1000, "wall.getComments": 2000}
    warning = project_budget(groups, results, usable_tokens=1, limits=limits).warning
    assert isinstance(warning, BudgetWarning) and isinstance(warning, str)
    assert warning.code is WarningCode.TOKENS_SHORT
    assert warning.args == {
        "short": [{"method": "wall.get", "calls": 1440, "limit": 1000},
                  {"method": "wall.getComments", "calls": 4320, "limit": 2000}],
        "usableTokens": 1, "addTokens": 2,  # ceil(4320 / 2000) - 1
    }
    assert warning == (
        "the schedule needs ~1,440 wall.get calls a day; 1 token allow 1,000; "
        "the schedule needs ~4,320 wall.getComments calls a day; 1 token allow 2,000: add 2 tokens or lengthen intervals"
    )
    for again in (copy.deepcopy(warning), pickle.loads(pickle.dumps(warning))):
        assert (again, again.code, again.args) == (warning, warning.code, warning.args)
    # the API gives the sentence, the code and the arguments, and has a code for each of the domain's
    shown = VkBudget.from_domain(project_budget(groups, results, usable_tokens=1, limits=limits))
    assert shown.warning == str(warning) and type(shown.warning) is str
    assert shown.warning_code is VkBudgetWarningCode.TOKENS_SHORT and shown.warning_args == warning.args
    assert {c.name for c in VkBudgetWarningCode} == {c.value for c in WarningCode}
    fits = VkBudget.from_domain(project_budget(groups, results, usable_tokens=3, limits=limits))
    assert (fits.warning, fits.warning_code, fits.warning_args) == (None, None, None)


async def test_the_meter_counts_for_its_own_context_only():
    async def sends(method: str, n: int) -> None:
        for _ in range(n):
            await asyncio.sleep(0)
            meter = vk_calls_meter()
            assert meter is not None
            meter[method] += 1

    async def run(method: str, n: int):
        with count_vk_calls() as calls:
            await asyncio.gather(sends(method, n), sends(method, n))  # tasks it starts count too
        return calls

    first, second = await asyncio.gather(run("wall.get", 3), run("users.get", 5))
    assert first == {"wall.get": 6} and second == {"users.get": 10}
    assert vk_calls_meter() is None
