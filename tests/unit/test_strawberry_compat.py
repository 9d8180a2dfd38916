"""What ``graphql_api.strawberry_compat`` relies on in Strawberry still holds.

A Strawberry upgrade that moves any of it fails here, by name, instead of sending every query
to the slow path (the read plan would find no field it knows) or mixing up loaders.
"""

from __future__ import annotations

import asyncio
import logging
import types
from collections.abc import AsyncIterator
from functools import partial
from typing import Any
from unittest.mock import Mock

import pytest
import strawberry
from graphql import ExecutionResult, GraphQLError, GraphQLSyntaxError, Source, parse, specified_rules
from graphql.execution.values import get_argument_values
from strawberry.extensions import SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.types.execution import PreExecutionError

from graphql_api import strawberry_compat as compat
from graphql_api.comments import CommentFilterInput, CommentOrderInput, CommentSortField
from graphql_api.context import Context
from graphql_api.schema import schema


def test_the_strawberry_schema_is_found_from_graphql_cores() -> None:
    assert compat.strawberry_schema(schema._schema) is schema


def test_a_graphql_field_leads_to_its_strawberry_field() -> None:
    published = compat.strawberry_field(schema._schema, "Comment", "publishedAt")
    assert published is not None and published.python_name == "published_at"
    assert compat.reads_attribute(schema._schema, published)
    url = compat.strawberry_field(schema._schema, "Comment", "url")
    assert url is not None and not compat.reads_attribute(schema._schema, url)
    assert list(url.base_resolver.signature.parameters) == ["self"]
    assert compat.strawberry_field(schema._schema, "Comment", "noSuchField") is None
    # Permissions are field extensions: the read plan leaves such fields to the normal executor.
    assert compat.strawberry_field(schema._schema, "Query", "apiTokens").extensions


def test_arguments_are_converted_as_resolvers_receive_them() -> None:
    comments = compat.strawberry_field(schema._schema, "Query", "comments")
    document = parse(
        '{ comments(filter: {matched: true, groupIds: ["1"]}, orderBy: {field: LIKES}, first: 5) { totalCount } }'
    )
    node = document.definitions[0].selection_set.selections[0]
    coerced = get_argument_values(schema._schema.query_type.fields["comments"], node)  # as graphql-core gives them
    converted = compat.python_arguments(schema._schema, comments, coerced)
    assert converted["first"] == 5 and converted["after"] is None
    assert isinstance(converted["filter"], CommentFilterInput)
    assert converted["filter"].matched is True and converted["filter"].group_ids == ["1"]
    assert converted["filter"].text is strawberry.UNSET or converted["filter"].text is None
    assert isinstance(converted["order_by"], CommentOrderInput)
    assert converted["order_by"].field is CommentSortField.LIKES


def test_a_resolvers_info_names_its_operation() -> None:
    seen = []

    @strawberry.type
    class Query:
        @strawberry.field
        def here(self, info: strawberry.Info) -> str:
            seen.append(compat.operation_of(info))
            return "ok"

    result = strawberry.Schema(query=Query).execute_sync("query Named { here }")
    assert result.errors is None
    assert seen[0].name.value == "Named"


async def test_context_loaders_are_per_operation() -> None:
    # Context.loaders keys its loaders by the node operation_of gives: fields of one operation
    # share one set, another operation on the same connection's context gets its own.
    container = types.SimpleNamespace(read_model=Mock())  # the loaders only keep its methods
    context = Context(request=None, response=None, container=container, request_id="r")  # type: ignore[arg-type]
    seen: list[tuple[str, object]] = []

    @strawberry.type
    class Query:
        @strawberry.field
        def here(self, info: strawberry.Info) -> str:
            seen.append((info.path.key, context.loaders(info)))
            return "ok"

    query = strawberry.Schema(query=Query)
    # Executed on the running loop: the loaders are made inside it, as in a request.
    assert (await query.execute("query One { a: here b: here }", context_value=context)).errors is None
    assert (await query.execute("query Two { c: here }", context_value=context)).errors is None
    loaders = dict(seen)
    assert loaders["a"] is loaders["b"] and loaders["c"] is not loaders["a"]


def test_validation_finds_what_strawberrys_validation_step_finds() -> None:
    rules = tuple(specified_rules)  # what an ExecutionContext starts with
    assert compat.validation_errors(schema, parse("{ groups(first: 1) { edges { cursor } } }"), rules) == []
    errors = compat.validation_errors(schema, parse("{ noSuchField }"), rules)
    assert [e.message for e in errors] == ["Cannot query field 'noSuchField' on type 'Query'."]


async def test_validated_documents_are_kept_by_identity() -> None:
    # The cache answers the same document object from memory and validates another one with the
    # same text again (what DocumentCache hands out is one object per text).
    from graphql_api.limits import ValidatedDocuments

    calls = []
    validate = compat.validation_errors

    def counted(*args):
        calls.append(args[1])
        return validate(*args)

    document, twin = parse("{ noSuchField2 }"), parse("{ noSuchField2 }")
    found = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("graphql_api.limits.validation_errors", counted)
        for doc in (document, document, twin):
            context = types.SimpleNamespace(
                graphql_document=doc, schema=schema, validation_rules=list(specified_rules), pre_execution_errors=None
            )
            extension = ValidatedDocuments()
            extension.execution_context = context
            for _ in extension.on_validate():
                pass
            found.append(context.pre_execution_errors)
    assert calls == [document, twin] and found[0] is found[1] and found[0] == found[2] and found[0]


async def _refused_origin_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The warnings logged while a page on another origin opens a WebSocket to a Strawberry app
    (its ASGI handshake driven directly: no server)."""
    from strawberry.asgi import GraphQL

    @strawberry.type
    class Query:
        here: str = "ok"

    incoming = [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}]
    sent: list[dict] = []

    async def receive() -> dict:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict) -> None:
        sent.append(message)

    headers = [(b"host", b"api.example"), (b"origin", b"https://elsewhere.example")]
    scope = {
        "type": "websocket", "path": "/", "raw_path": b"/", "root_path": "", "query_string": b"",
        "headers": headers, "subprotocols": ["graphql-transport-ws"], "scheme": "ws",
        "client": ("127.0.0.1", 1), "server": ("api.example", 80), "asgi": {"version": "3.0"},
    }  # fmt: skip
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        await GraphQL(strawberry.Schema(query=Query))(scope, receive, send)
    assert sent and sent[0]["type"] != "websocket.accept", sent  # refused
    return [r.getMessage() for r in caplog.records if r.name.startswith("strawberry")]


async def test_strawberrys_origin_advice_is_recognised_and_dropped(caplog, monkeypatch) -> None:
    monkeypatch.setattr(logging.getLogger("strawberry.ws"), "filters", [])  # as it was, after the test
    told = await _refused_origin_warnings(caplog)
    assert len(told) == 1 and "allowed_origins" in told[0]  # Strawberry still refuses, and says so
    compat.drop_strawberrys_origin_advice()
    assert await _refused_origin_warnings(caplog) == []


async def test_the_document_cache_parses_a_text_once_and_leaves_syntax_errors_to_the_result() -> None:
    seen: list[object] = []

    @strawberry.type
    class Query:
        @strawberry.field
        def here(self, info: strawberry.Info) -> str:
            seen.append(compat.operation_of(info))
            return "ok"

    cached = strawberry.Schema(query=Query, extensions=[partial(compat.DocumentCache, maxsize=4)])  # as limits.py
    for _ in range(2):
        assert (await cached.execute("query Q { here }")).errors is None
    assert seen[0] is seen[1]  # one parse, one document object, for one text
    broken = await cached.execute("query Q { here ")
    assert broken.errors is not None and broken.errors[0].message.startswith("Syntax Error")


class _Tagged(compat.MaskErrorsOfEveryResult):
    def after_masking(self, errors):  # type: ignore[no-untyped-def]
        return [GraphQLError(e.message, extensions={"seen": True}) for e in errors]


async def test_every_result_with_errors_is_masked_then_handed_to_after_masking() -> None:
    @strawberry.type
    class Query:
        @strawberry.field
        def broken(self) -> str:
            raise RuntimeError("secret detail")

    @strawberry.type
    class Subscription:
        @strawberry.subscription
        async def ticks(self) -> AsyncIterator[int | None]:
            yield 1
            raise RuntimeError("secret detail")

    tagged = strawberry.Schema(query=Query, subscription=Subscription, extensions=[_Tagged])
    result = await tagged.execute("{ broken }")
    assert [(e.message, e.extensions) for e in result.errors or []] == [("Unexpected error.", {"seen": True})]
    stream = await tagged.subscribe("subscription { ticks }")
    assert not isinstance(stream, ExecutionResult)
    events = [event async for event in stream]
    assert events[0].data == {"ticks": 1} and not events[0].errors
    assert [(e.message, e.extensions) for e in events[-1].errors or []] == [("Unexpected error.", {"seen": True})]


class _Websocket:
    def __init__(self) -> None:
        self.closed: tuple[int, str] | None = None

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


class _Operation:
    id = "1"

    def __init__(self) -> None:
        self.errors: list[GraphQLError] = []

    async def send_initial_errors(self, errors: list[GraphQLError]) -> None:
        self.errors.extend(errors)


def _handler() -> Any:
    handler = object.__new__(compat.TransportWsHandler)  # only its answers to a first result run
    handler.websocket, handler.operations = _Websocket(), {"1": object()}
    return handler


async def test_a_first_result_that_failed_is_answered_as_strawberry_answers_it() -> None:
    handler, operation = _handler(), _Operation()
    invalid = GraphQLError("Cannot query field 'nope' on type 'Subscription'.")
    await handler.send_pre_execution_error(operation, PreExecutionError(data=None, errors=[invalid]))
    assert operation.errors == [invalid] and handler.websocket.closed is None

    unparsable = GraphQLSyntaxError(Source("subscription {"), 14, "Expected Name, found <EOF>.")
    with pytest.raises(compat.OperationStreamClosed):
        await handler.send_pre_execution_error(operation, PreExecutionError(data=None, errors=[unparsable]))
    assert handler.websocket.closed == (4400, unparsable.message) and handler.operations == {}

    await handler.reject_incremental_delivery(operation)
    assert operation.errors[-1].message == "Incremental delivery is not supported over graphql-transport-ws"


async def test_an_execution_context_that_extends_strawberrys_runs_its_operations() -> None:
    # fanout.SharedEventExecutor extends StrawberryExecutionContext: a schema given a subclass
    # must run queries through it, and keep Strawberry's answer to a resolver's exception.
    ran: list[str] = []

    class Counting(compat.StrawberryExecutionContext):
        def execute_operation(self, *args: Any, **kwargs: Any) -> Any:
            ran.append(self.operation.operation.value)
            return super().execute_operation(*args, **kwargs)

    @strawberry.type
    class Query:
        @strawberry.field
        def fine(self) -> str:
            return "ok"

        @strawberry.field
        def broken(self) -> str:
            raise ValueError("broken on purpose")

    query = strawberry.Schema(query=Query, execution_context_class=Counting)
    assert (await query.execute("{ fine }")).data == {"fine": "ok"}
    failed = await query.execute("{ broken }")
    assert failed.data is None and failed.errors and failed.errors[0].message == "broken on purpose"
    assert ran == ["query", "query"]


def test_extension_hooks_classified_once_per_class_run_as_strawberrys_own() -> None:
    """``ExtensionsRunner`` finds the hooks Strawberry's runner finds (which, in which order,
    sync or async), and each runs around its stage as Strawberry runs it: a generator's code
    before and after, an async generator's, and a plain method's."""
    seen: list[str] = []

    class Generator(SchemaExtension):
        def on_validate(self):  # type: ignore[no-untyped-def]
            seen.append(f"before {id(self)}")
            yield
            seen.append(f"after {id(self)}")

    class AsyncGenerator(SchemaExtension):
        async def on_execute(self):  # type: ignore[no-untyped-def]
            seen.append("async before")
            yield
            seen.append("async after")

    class Plain(SchemaExtension):
        def on_parse(self) -> None:  # type: ignore[override]
            seen.append("plain")

    extensions = [*schema.get_extensions(), Generator(), AsyncGenerator(), Plain(), Generator()]

    def stages(runner: Any) -> list[list[tuple[Any, bool]]]:
        made = (runner.operation(), runner.validation(), runner.parsing(), runner.executing())
        return [[(h.extension, h.is_async) for h in stage.hooks] for stage in made]

    assert stages(compat.ExtensionsRunner(None, extensions)) == stages(SchemaExtensionsRunner(None, extensions))
    assert isinstance(schema.create_extensions_runner(None, extensions), compat.ExtensionsRunner)  # type: ignore[arg-type]

    async def run() -> None:
        runner = compat.ExtensionsRunner(None, extensions[-4:])
        with runner.validation():
            seen.append("validating")
        async with runner.executing():
            seen.append("executing")
        async with runner.parsing():
            pass

    asyncio.run(run())
    first, last = id(extensions[-4]), id(extensions[-1])
    assert seen == [f"before {first}", f"before {last}", "validating", f"after {last}", f"after {first}",
                    "async before", "executing", "async after", "plain"]
