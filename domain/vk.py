"""What the rest of the system may know of the VK token pool: each token's state, as operators
see it (a fingerprint, never the token), and the gateway's running counters.

The gateway (``infrastructure/vk/gateway.py``) keeps them; the API shows them (``vkTokens``,
``/readyz``, ``/metrics``) and ``domain.budget`` counts against them. VK's own rules (which
error parks a token, which revokes it) are in ``docs/vk-api.md``.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class TokenStatus(enum.StrEnum):
    ACTIVE = "ACTIVE"
    PARKED = "PARKED"  # resting after a daily quota or a captcha, until ``TokenState.until``
    REVOKED = "REVOKED"  # rejected by VK: not used again


@dataclass(frozen=True)
class TokenState:
    """What operators may see of a token: never the token itself."""

    fingerprint: str
    status: TokenStatus
    requests: int  # sent by this process
    until: datetime | None = None  # when a PARKED token comes back
    reason: str | None = None
    calls_today: dict[str, int] = field(default_factory=dict)  # by method, every process's (UTC day)


@dataclass
class GatewayStats:
    """A gateway's counters since the process started (``/metrics``): all zeros for one that
    sends nothing."""

    requests: int = 0
    calls: int = 0
    errors: Counter[int] = field(default_factory=Counter)  # VK error codes, request and call level
    network_errors: int = 0
    retries: int = 0
    splits: int = 0
    limiter_wait: float = 0.0  # seconds spent waiting for slots

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "calls": self.calls, "errors": dict(self.errors),
                "network_errors": self.network_errors, "retries": self.retries, "splits": self.splits,
                "limiter_wait": round(self.limiter_wait, 3)}
