"""Tokens VK stops serving in the middle of a parse, on both stacks with real processes (as
``test_stacks.py`` runs them): one token meets its daily quota of ``wall.getComments`` and
another turns invalid, as VK says it inside ``execute`` (``false`` + ``execute_errors``).
The parse still stores every comment of the community, using the third token; the operator sees
the first PARKED until the next 00:00 UTC and the second REVOKED, each with VK's reason, and
every call counted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from infrastructure.vk.gateway import token_fingerprint
from infrastructure.vk.world import generated_world
from tests.e2e.test_stacks import ADD, PARSE, Stack, _all_comments, _wait_task, running_stack
from tests.processes import vk_emulator

TIRED, SHORT, FRESH = "vk1.a.e2e-tired-token", "vk1.a.e2e-short-lived-token", "vk1.a.e2e-fresh-token"
SEED, POSTS, COMMENTS = 13, 60, 10
# Few requests a second per token, so that no one token can carry the parse alone: the token
# that just sent waits its next slot while another one takes the next batch. At 20 a second a
# loaded machine's round trip outlasted the slot, one token took every batch (57 of 67 calls
# in one run), and the tired token never met its quota.
RPS = 3


@pytest.fixture(scope="module")
def world():
    return generated_world(SEED, communities=1, posts_per_community=POSTS, comments_per_post=COMMENTS,
                           closed_comment_posts=0, closed_communities=0)


@pytest.fixture
def vk_url(tmp_path: Path) -> Iterator[str]:
    """A VK of each stack's own: the quotas and the expiry count from zero."""
    log = tmp_path / "emulator.log"
    args = ["--rps", str(RPS), "--world", "generated",
            "--seed", str(SEED), "--communities", "1", "--posts", str(POSTS), "--comments", str(COMMENTS),
            "--closed-comment-posts", "0", "--closed-communities", "0",
            "--token", TIRED, "--token", SHORT, "--token", FRESH,
            "--token-quota", f"{TIRED}:wall.getComments=1", "--expire-after", f"{SHORT}=3"]
    with vk_emulator(args, log) as url:
        yield url


@pytest.fixture(params=["embedded", "production"])
async def stack(request, tmp_path: Path, vk_url: str) -> AsyncIterator[Stack]:
    env = {"VKCP_VK_API_URL": vk_url, "VKCP_VK_TOKENS": f"{TIRED},{SHORT},{FRESH}", "VKCP_VK_RPS": str(RPS),
           "VKCP_COLLECT_CONCURRENCY": "6"}
    async with running_stack(request.param, tmp_path, env, role="admin", secrets=(TIRED, SHORT, FRESH)) as stack:
        yield stack


TOKENS = "{ vkTokens { fingerprint state parkedUntil reason callsToday } }"


async def test_a_parse_outlives_a_token_over_its_quota_and_one_turned_invalid(stack: Stack, world, vk_url) -> None:
    owner = world.open_owner_ids()[0]
    group = (await stack.gql(ADD, ref=f"club{-owner}"))["addGroup"]["group"]
    [task] = (await stack.gql(PARSE, ids=[group["id"]]))["startParse"]["tasks"]
    finished = await _wait_task(stack, task["id"])
    assert finished["state"] == "SUCCEEDED", finished

    keys, total = await _all_comments(stack)
    assert total == len(set(keys)) and {vk_id for _, vk_id in keys} == world.expected_comments(owner)

    tokens = {t["fingerprint"]: t for t in (await stack.gql(TOKENS))["vkTokens"]}
    tired, short, fresh = (tokens[token_fingerprint(t)] for t in (TIRED, SHORT, FRESH))
    async with httpx.AsyncClient() as client:
        stats = (await client.get(vk_url.replace("/method", "/_stats"))).json()
    assert tired["state"] == "PARKED", (tired, stats["calls_today"])  # the calls show how the tokens shared the parse
    assert tired["parkedUntil"].endswith("T00:00:00+00:00")
    assert tired["reason"] == "VK error 29: Rate limit reached (in execute, wall.getComments)"
    assert short["state"] == "REVOKED" and short["reason"].startswith("VK error 5: User authorization failed")
    assert fresh["state"] == "ACTIVE"
    assert stats["call_errors"].get("29"), "VK never said it inside execute"
    # Invalid from its 4th call on: inside the execute that crosses it (its first batch is
    # usually the six pages the parse has in flight), unless a request ended
    # exactly there (then at the top level): the batches' sizes are the dispatchers' race.
    assert stats["call_errors"].get("5") or stats["errors"].get("5")
    # Every call VK answered is counted, whichever process made it.
    answered = {fp: sum(methods.values()) for fp, methods in stats["calls_today"].items()}
    for fingerprint, token in tokens.items():
        assert token["callsToday"] == answered.get(fingerprint, 0)
