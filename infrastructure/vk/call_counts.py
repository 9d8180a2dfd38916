"""VK calls per token per UTC day, by method: what VK's daily quotas count.

Every call a gateway sends is counted, each inner call of an ``execute`` included (VK counts
those against the method's quota; the ``execute`` itself is not counted). With Redis the
counts are every process's: each gateway adds what it sent to

``{prefix}vk-calls:{fingerprint}:{YYYYMMDD}``: a hash, method → calls that UTC day,

which expires two days after its last addition (the fingerprint, never the token). Without
Redis (the embedded mode) the counts are this process's own, kept in memory for today and
yesterday.

A Redis outage never stops collection: sent calls are counted here and added to Redis at the
first ``flush`` that gets through (the gateway flushes as often as it syncs token states).
An addition is one MULTI/EXEC transaction, so one either lands whole or not at all; only a
reply lost after Redis applied it would count those calls twice.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

KEY = "vk-calls:"
TTL = timedelta(days=2)

Counts = dict[tuple[str, str], Counter[str]]  # (fingerprint, YYYYMMDD) -> method -> calls


def utc_day(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y%m%d")


class DailyCallCounts:
    """Counts as one process sees them; ``redis`` None keeps them in memory only. Methods
    that touch Redis raise what redis-py raises (``REDIS_ERRORS``): the gateway decides what an
    outage means, as with the token states."""

    def __init__(self, redis: Any = None, *, prefix: str = "vkcp:",
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.redis = redis
        self.prefix = f"{prefix}{KEY}"
        self.clock = clock
        self._unsent: Counts = defaultdict(Counter)  # counted here, not yet in Redis (all, without Redis)
        self._sending: Counts = {}  # in a flush that has not answered yet
        self._read: Counts = {}  # what Redis held at the last read

    def key(self, fingerprint: str, day: str) -> str:
        return f"{self.prefix}{fingerprint}:{day}"

    def today(self) -> str:
        return utc_day(self.clock())

    def add(self, fingerprint: str, methods: Iterable[str]) -> None:
        """Calls sent with the token just now."""
        self._unsent[(fingerprint, self.today())].update(methods)

    async def flush(self) -> None:
        """Add what was counted here to Redis; kept for the next flush if Redis fails."""
        if self.redis is None or not self._unsent:
            return
        self._sending, self._unsent = self._unsent, defaultdict(Counter)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                for (fingerprint, day), methods in self._sending.items():
                    key = self.key(fingerprint, day)
                    for method, calls in methods.items():
                        pipe.hincrby(key, method, calls)
                    pipe.pexpire(key, int(TTL.total_seconds() * 1000))
                await pipe.execute()
        except BaseException:
            for slot, methods in self._sending.items():
                self._unsent[slot].update(methods)
            raise
        finally:
            self._sending = {}

    async def read(self, fingerprints: Sequence[str]) -> None:
        """Fetch today's counts of every process (one round trip)."""
        if self.redis is None or not fingerprints:
            return
        day = self.today()
        async with self.redis.pipeline(transaction=False) as pipe:
            for fingerprint in fingerprints:
                pipe.hgetall(self.key(fingerprint, day))
            found = await pipe.execute()
        self._read = {
            (fingerprint, day): Counter({_text(m): int(n) for m, n in values.items()})
            for fingerprint, values in zip(fingerprints, found, strict=True)
        }

    def calls_today(self, fingerprint: str) -> Counter[str]:
        """Today's calls by method: the last read from Redis plus what is not in it yet."""
        slot = (fingerprint, self.today())
        self._forget_old_days()
        total = Counter(self._read.get(slot, {}))
        total.update(self._sending.get(slot, {}))
        total.update(self._unsent.get(slot, {}))
        return total

    def _forget_old_days(self) -> None:
        keep = {self.today(), utc_day(self.clock() - timedelta(days=1))}
        for counts in (self._read, self._unsent):
            for slot in [s for s in counts if s[1] not in keep]:
                if counts is self._unsent and self.redis is not None:
                    continue  # yesterday's unsent calls still go to Redis at the next flush
                del counts[slot]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
