"""VK calls per token per UTC day, by method: what VK's daily quotas count.

Every call a gateway sends is counted, each inner call of an ``execute`` included (VK counts
those against the method's quota; the ``execute`` itself is not counted), except those VK
refuses for the token's sake (29, 14, 5...: it did not run them).

With Redis the counts are every process's. Each process keeps its own totals and writes them,
as totals, into one hash per token and day:

``{prefix}vk-calls:{fingerprint}:{YYYYMMDD}``: field ``{process}:{method}`` → that process's
calls of the method that day; the key expires two days after its last write.

A token's count is the sum over the processes' fields. Writing totals rather than increments
makes a write safe to repeat: calls made while Redis was unreachable are in the next total
that gets through, a reply lost after Redis applied a write counts nothing twice, and a Redis
that restarted empty gets every process's totals again at its next write (a process that finds
its own field missing or behind in a read writes at once). A process that stopped leaves its
field behind, still counted until the key expires. Tokens appear only as fingerprints.

Without Redis (the embedded mode) the counts are this process's own, in memory.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

KEY = "vk-calls:"
TTL = timedelta(days=2)

Slot = tuple[str, str]  # (fingerprint, YYYYMMDD)


def utc_day(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y%m%d")


class DailyCallCounts:
    """Counts as one process sees them; ``redis`` None keeps them in memory only. ``flush`` and
    ``read`` raise what redis-py raises (``REDIS_ERRORS``): the gateway decides what an outage
    means, as with the token states."""

    def __init__(self, redis: Any = None, *, prefix: str = "vkcp:", process: str | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.redis = redis
        self.prefix = f"{prefix}{KEY}"
        self.process = process or uuid.uuid4().hex[:12]  # this process's fields
        self.clock = clock
        self._mine: dict[Slot, Counter[str]] = defaultdict(Counter)
        self._unwritten: set[Slot] = set()  # slots whose totals Redis does not have yet
        self._others: dict[Slot, Counter[str]] = {}  # the other processes', at the last read

    def key(self, fingerprint: str, day: str) -> str:
        return f"{self.prefix}{fingerprint}:{day}"

    def today(self) -> str:
        return utc_day(self.clock())

    def add(self, fingerprint: str, methods: Iterable[str], calls: int = 1) -> None:
        """Calls sent with the token just now (``calls=-1``: taken back, VK refused them)."""
        slot = (fingerprint, self.today())
        counts = self._mine[slot]
        for method in methods:
            counts[method] += calls
        self._unwritten.add(slot)

    async def flush(self) -> None:
        """Write this process's totals that Redis lacks; kept for the next flush if it fails."""
        if self.redis is None or not self._unwritten:
            return
        slots, self._unwritten = self._unwritten, set()
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                for slot in slots:
                    key = self.key(*slot)
                    pipe.hset(key, mapping={f"{self.process}:{m}": n for m, n in self._mine[slot].items()})
                    pipe.pexpire(key, int(TTL.total_seconds() * 1000))
                await pipe.execute()
        except BaseException:
            self._unwritten |= slots
            raise

    async def read(self, fingerprints: Sequence[str]) -> None:
        """Fetch today's counts of the other processes (one round trip)."""
        if self.redis is None or not fingerprints:
            return
        day = self.today()
        async with self.redis.pipeline(transaction=False) as pipe:
            for fingerprint in fingerprints:
                pipe.hgetall(self.key(fingerprint, day))
            found = await pipe.execute()
        others: dict[Slot, Counter[str]] = {}
        for fingerprint, fields in zip(fingerprints, found, strict=True):
            slot = (fingerprint, day)
            theirs: Counter[str] = Counter()
            mine: Counter[str] = Counter()
            for field, value in fields.items():
                process, _, method = _text(field).partition(":")
                (mine if process == self.process else theirs)[method] += int(value)
            others[slot] = theirs
            if any(mine[m] != n for m, n in self._mine.get(slot, {}).items()):
                self._unwritten.add(slot)  # lost (a Redis restart) or behind: written at the next flush
        self._others = others

    def calls_today(self, fingerprint: str) -> Counter[str]:
        """Today's calls by method: this process's own plus the others' at the last read."""
        slot = (fingerprint, self.today())
        self._forget_old_days()
        total = Counter(self._others.get(slot, {}))
        total.update(self._mine.get(slot, {}))
        return +total

    def _forget_old_days(self) -> None:
        keep = {self.today(), utc_day(self.clock() - timedelta(days=1))}
        for slot in [s for s in self._mine if s[1] not in keep and s not in self._unwritten]:
            del self._mine[slot]
        for slot in [s for s in self._others if s[1] not in keep]:
            del self._others[slot]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
