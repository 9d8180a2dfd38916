"""``BoundedDict``: a dict that keeps at most ``size`` entries, dropping the oldest.

The one shape of the process-local caches (compiled plans, statements, validated documents,
channel snapshots): whatever clients send, memory stays bounded, and what was stored last stays.
Eviction is by insertion, not by use: a cache hit costs a plain ``dict`` lookup, with no
bookkeeping, which is what these caches are on the hot path for.

A plain data structure (the standard library only), kept here because the API and the adapters
may both import the domain and nothing else they share.
"""

from __future__ import annotations

from typing import Any, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedDict(dict[K, V]):
    """Storing a key makes it the newest; storing one more than ``size`` drops the oldest.

    Reads are ``dict``'s own. Every write goes through ``__setitem__`` (``update``,
    ``setdefault`` and ``|=`` included), so the bound holds however an entry is stored."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a BoundedDict keeps at least one entry")
        super().__init__()
        self.size = size

    def __setitem__(self, key: K, value: V) -> None:
        if key in self:
            del self[key]  # stored again: the newest now
        elif len(self) >= self.size:
            del self[next(iter(self))]  # the oldest
        super().__setitem__(key, value)

    def update(self, *args: Any, **more: Any) -> None:
        for key, value in dict(*args, **more).items():  # dict's own rules for what it takes
            self[key] = value

    # dict.setdefault's default is None too, whatever V is (typeshed spells it with overloads).
    def setdefault(self, key: K, default: V = None) -> V:  # type: ignore[assignment]
        if key not in self:
            self[key] = default
        return self[key]

    # Takes whatever update() takes, as dict's |= does, which typeshed narrows to a Mapping.
    def __ior__(self, other: Any) -> BoundedDict[K, V]:  # type: ignore[override,misc]
        self.update(other)
        return self

    def __repr__(self) -> str:
        return f"BoundedDict({self.size}, {dict(self)!r})"
