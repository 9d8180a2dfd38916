"""What ``graphql_api/graphql_core_compat.py`` relies on in graphql-core still holds: an upgrade
that changes it fails here, by name, instead of the read plan grouping fields unlike the
executor or subscriptions keeping every event in memory."""

from __future__ import annotations

import inspect

from graphql import ExecutionResult, Executor, build_schema, parse, subscribe

from graphql_api import graphql_core_compat as compat

SCHEMA = build_schema("""
    type Author { name: String id: ID }
    type Comment { text: String author: Author }
    type Query { comments: [Comment] }
    type Subscription { comment: Comment }
""")


def test_fields_are_grouped_as_the_executor_groups_them() -> None:
    document = parse("""
        query ($noText: Boolean!) {
          comments { text @skip(if: $noText) ...Who author { id } }
          again: comments { text }
        }
        fragment Who on Comment { author { name } }
    """)
    executor = Executor.build(SCHEMA, document, raw_variable_values={"noText": True})
    query = SCHEMA.query_type
    assert query is not None and not isinstance(executor, list)
    roots = compat.collect_fields(SCHEMA, executor.fragments, executor.variable_values, query, executor.operation)
    assert list(roots.grouped_field_set) == ["comments", "again"] and not roots.new_defer_usages
    comment = SCHEMA.get_type("Comment")
    sub = compat.collect_subfields(
        SCHEMA, executor.fragments, executor.variable_values, executor.operation, comment,
        roots.grouped_field_set["comments"],
    )  # fmt: skip
    assert list(sub.grouped_field_set) == ["author"]  # skipped text; the fragment's author merged in
    author = sub.grouped_field_set["author"]
    assert [d.node.name.value for d in author] == ["author", "author"]
    names = compat.collect_subfields(
        SCHEMA, executor.fragments, executor.variable_values, executor.operation, SCHEMA.get_type("Author"), author
    )
    assert list(names.grouped_field_set) == ["name", "id"]


async def test_each_event_memoizes_in_its_own_memo_and_the_subscriptions_stays_empty() -> None:
    events = [{"comment": {"text": str(i), "author": {"name": f"n{i}"}}} for i in range(3)]
    per_event: list[object] = []
    parents: list[Executor] = []

    class OwnMemo(Executor):
        def build_per_event_executor(self, payload):  # type: ignore[no-untyped-def]
            executor = super().build_per_event_executor(payload)
            shared = compat.subfield_memo(executor) is compat.subfield_memo(self)
            compat.own_subfield_memo(executor)
            per_event.append((shared, executor))
            parents.append(self)
            return executor

    async def source(*_):  # type: ignore[no-untyped-def]
        for event in events:
            yield event

    subscription_type = SCHEMA.subscription_type
    assert subscription_type is not None
    subscription_type.fields["comment"].subscribe = source
    stream = subscribe(SCHEMA, parse("subscription { comment { text author { name } } }"), executor_class=OwnMemo)
    if inspect.isawaitable(stream):
        stream = await stream
    assert not isinstance(stream, ExecutionResult), stream
    results = [result async for result in stream]
    assert [r.data["comment"]["author"]["name"] for r in results] == ["n0", "n1", "n2"]
    # graphql-core shares the parent's memo with every event: the reason for the override.
    assert [shared for shared, _ in per_event] == [True, True, True]
    memos = [compat.subfield_memo(executor) for _, executor in per_event]
    assert all(memos) and len({id(memo) for memo in memos}) == 3  # each event used its own
    assert compat.subfield_memo(parents[0]) == {}  # and left nothing in the subscription's
