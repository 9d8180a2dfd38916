"""Every use of graphql-core beyond its documented API, in one place.

The read plan groups a document's fields the way graphql-core's executor does, with the
executor's own ``collect_fields`` and ``collect_subfields`` ("for internal use only"), so a plan
and Strawberry's executor never disagree on what a query asked. A subscription's per-event
executor shares its parent's memo of collected subfields (``_relevant_sub_fields``), keyed by the
identity of field lists each event makes anew: ``fanout.py`` gives every event a memo of its own,
or every event of a long subscription stays in memory. A graphql-core upgrade that changes any
of it fails ``tests/unit/test_graphql_core_compat.py`` loudly.
"""

from __future__ import annotations

from typing import Any

from graphql.execution.collect_fields import CollectedFields, collect_fields, collect_subfields

__all__ = ["CollectedFields", "collect_fields", "collect_subfields", "own_subfield_memo", "subfield_memo"]


def subfield_memo(executor: Any) -> dict[Any, Any]:
    """The executor's memo of the subfields it collected, by (type, field list)."""
    memo: dict[Any, Any] = executor._relevant_sub_fields
    return memo


def own_subfield_memo(executor: Any) -> None:
    """Give a per-event copy of an executor a memo of its own, not its parent's."""
    executor._relevant_sub_fields = {}
