"""The VK token pool's states, shared by every process through Redis.

With Redis configured, the API and any number of workers use the same VK tokens. A token VK
rejects (REVOKED) or rests (PARKED, for a quota or a captcha) in one process is unusable in all
of them, so each gateway records what it learns here and reads what the others learned: the
API's ``vkTokens`` and ``/readyz`` tell the truth about tokens only workers use, and a worker
stops sending requests with a token another process already saw rejected.

Keys (under the installation's prefix, by fingerprint: never the token itself):
``{prefix}vk-token:{fingerprint}``: JSON ``{"status", "until", "reason"}``; a PARKED token's
key expires when the token is usable again, a REVOKED one's after ``REVOKED_TTL`` (a rejected
token stays rejected; the expiry only keeps old fingerprints from piling up). An ACTIVE token
has no key. Request counts stay per process (``vkTokens.requests``, a Prometheus counter); the
calls per day that VK's quotas count are shared beside the states (``call_counts.py``).

While Redis is unreachable each process goes on with what it saw itself plus what it last
read (collection never waits for this store: the rate limiter is what waits out an outage),
and reports that view; what it learned meanwhile is recorded at the first sync after Redis
answers again, which also restores states a restarted Redis forgot.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

KEY = "vk-token:"
REVOKED_TTL = timedelta(days=30)


@dataclass(frozen=True)
class SharedTokenState:
    status: str  # "PARKED" or "REVOKED": an ACTIVE token has no state key
    until: datetime | None
    reason: str | None


class RedisTokenStates:
    """What every process knows of the tokens it shares; methods raise what redis-py raises
    (``REDIS_ERRORS``): the gateway decides what an outage means."""

    def __init__(self, redis: Any, *, prefix: str = "vkcp:") -> None:
        self.redis = redis
        self.prefix = f"{prefix}{KEY}"

    def _key(self, fingerprint: str) -> str:
        return f"{self.prefix}{fingerprint}"

    async def record(self, fingerprint: str, state: SharedTokenState) -> None:
        if state.status == "PARKED":
            if state.until is None:
                raise ValueError("a PARKED token needs its until")
            ttl = state.until - datetime.now(UTC)
            if ttl <= timedelta(0):
                return
        else:
            ttl = REVOKED_TTL
        value = json.dumps({"status": state.status, "reason": state.reason,
                            "until": state.until.isoformat() if state.until else None})
        await self.redis.set(self._key(fingerprint), value, px=max(1, int(ttl.total_seconds() * 1000)))

    async def read(self, fingerprints: Sequence[str]) -> dict[str, SharedTokenState | None]:
        """Every token's shared state, in one round trip (None: ACTIVE as far as anyone knows)."""
        values = await self.redis.mget([self._key(f) for f in fingerprints]) if fingerprints else []
        return {fingerprint: _state(raw) for fingerprint, raw in zip(fingerprints, values, strict=True)}


def _state(raw: bytes | str | None) -> SharedTokenState | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        until = datetime.fromisoformat(data["until"]) if data.get("until") else None
        status = data["status"]
    except (ValueError, KeyError, TypeError):
        return None  # not ours to understand: treat the token as having no shared state
    if status not in ("PARKED", "REVOKED"):
        return None
    return SharedTokenState(status, until, data.get("reason"))
