"""Every use of Strawberry beyond its documented API, in one place.

Strawberry has no public way to get from graphql-core's execution back to its own definitions,
nor from a resolver's ``Info`` to the operation node it runs in; these functions do it. Nor to
word its WebSocket origin rejection: its line is recognised by its logger and text here. And
its parser cache's own parse (``cached_parse_document``) is called here, not in ``on_parse``; and
``MaskErrors``' two private steps (``_process_result``, ``_process_errors``) are overridden here,
and the graphql-transport-ws handler's private answers to a subscription's first result are
reached through ``TransportWsHandler``. And Strawberry's own graphql-core execution context,
which ``fanout.SharedEventExecutor`` extends, is not exported: ``StrawberryExecutionContext``. A
Strawberry upgrade that moves any of it fails ``tests/unit/test_strawberry_compat.py`` loudly,
instead of quietly sending every query down the slow path (or mixing up operations' loaders).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Iterator
from functools import partial
from typing import Any, Generic, TypeVar

from graphql import DocumentNode, GraphQLError, GraphQLSchema, OperationDefinitionNode
from strawberry.extensions import MaskErrors, ParserCache, SchemaExtension
from strawberry.extensions.context import (
    ExecutingContextManager,
    ExtensionContextManagerBase,
    OperationContextManager,
    ParsingContextManager,
    ValidationContextManager,
    WrappedHook,
)
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext, validate_document
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
    _OperationStreamClosed,
)
from strawberry.types.arguments import convert_arguments
from strawberry.types.execution import PreExecutionError
from strawberry.types.field import StrawberryField

# The graphql-core execution context Strawberry runs every operation with (its error handling
# included); a ``Schema(execution_context_class=...)`` that extends it keeps Strawberry's behaviour.
StrawberryExecutionContext = StrawberryGraphQLCoreExecutionContext


def strawberry_schema(schema: GraphQLSchema) -> Any:
    """The Strawberry schema a graphql-core schema was built by (Strawberry's back-reference)."""
    return schema.extensions[GraphQLCoreConverter.DEFINITION_BACKREF]


def strawberry_field(schema: GraphQLSchema, type_name: str, field_name: str) -> StrawberryField | None:
    """The Strawberry field behind a GraphQL field (by GraphQL names)."""
    return strawberry_schema(schema).get_field_for_type(field_name, type_name)


def python_arguments(schema: GraphQLSchema, field: StrawberryField, values: dict[str, Any]) -> dict[str, Any]:
    """graphql-core's coerced arguments of ``field`` as its resolver receives them (input objects
    as their Strawberry classes, Python names), converted the way Strawberry converts them."""
    owner = strawberry_schema(schema)
    return convert_arguments(
        values, field.arguments, scalar_registry=owner.schema_converter.scalar_registry, config=owner.config
    )


def reads_attribute(schema: GraphQLSchema, field: StrawberryField) -> bool:
    """Whether Strawberry answers ``field`` by reading the attribute of its Python name."""
    return field.base_resolver is None and strawberry_schema(schema).config.default_resolver is getattr


def operation_of(info: Any) -> OperationDefinitionNode:
    """The operation node a resolver's ``Info`` runs in (Strawberry keeps graphql-core's info private)."""
    return info._raw_info.operation


def validation_errors(schema: Any, document: DocumentNode, rules: tuple) -> list[GraphQLError]:
    """What Strawberry's validation step finds in ``document`` (``rules`` and its own), as its
    ``ValidationCache`` computes it, for the Strawberry ``schema``."""
    return validate_document(schema._schema, document, rules)


class _WithoutOriginAdvice(logging.Filter):
    """Strawberry's rejection line names its own ``allowed_origins``; ours names the setting."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Rejected WebSocket connection from origin")


_ORIGIN_ADVICE = _WithoutOriginAdvice()


def drop_strawberrys_origin_advice() -> None:
    """Keep Strawberry's warning about a refused WebSocket origin out of the logs (the app logs
    its own, naming ``VKCP_CORS_ORIGINS``). Idempotent: a logger holds one copy of a filter."""
    logging.getLogger("strawberry.ws").addFilter(_ORIGIN_ADVICE)


class DocumentCache(ParserCache):
    """Strawberry's parser cache, minus one flaw: it parses in ``on_parse`` itself, so a syntax
    error escaped the parsing step. Over HTTP that still became a response (without a code); a
    WebSocket subscription just completed, silently. Here a document that does not parse is left
    to Strawberry's own parse, which reports the error as the operation's result."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        # A failing document is parsed again, uncached, by Strawberry: not worth caching.
        with contextlib.suppress(GraphQLError):
            context.graphql_document = self.cached_parse_document(context.query, **context.parse_options)
        yield


class MaskErrorsOfEveryResult(MaskErrors):
    """``MaskErrors`` whose masked errors also pass through ``after_masking``, for every result
    that has errors: a query's, and each subscription event's."""

    def after_masking(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return errors

    def _process_result(self, result: object) -> None:
        # Strawberry's version first asks a runtime-checkable Protocol, which costs more than
        # sending the result does; that is paid per subscriber for every subscription event.
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)  # type: ignore[attr-defined]

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return self.after_masking(super()._process_errors(errors))


# --- extension hooks, classified once per class ---------------------------------------------
#
# For every operation Strawberry builds four context managers (parsing, validation, execution
# and the operation around them) and each asks every extension (seven here) whether it has that
# hook, how it is written (``inspect``), and wraps a generator hook in a fresh
# ``contextlib.contextmanager`` (``functools.update_wrapper`` each time): 0.16 ms a request, a
# sixth of a whole ``node(id:)`` refetch's CPU. Which hook a class has, and how it is written,
# never changes: here it is found once per class and hook, and a generator hook is entered
# through a ``contextmanager`` made once of the class's function.

_HOOKS: dict[tuple[type, str], tuple[int, Any]] = {}
_NO_HOOK, _GENERATOR, _ASYNC_GENERATOR, _OTHER = range(4)


class _ClassifiedHooks(ExtensionContextManagerBase):
    def get_hook(self, extension: SchemaExtension) -> WrappedHook | None:
        key = (type(extension), self.HOOK_NAME)
        found = _HOOKS.get(key)
        if found is None:
            found = _HOOKS[key] = _classified(type(extension), self.HOOK_NAME, self.default_hook)
        kind, made = found
        if kind == _NO_HOOK:
            return None
        if kind == _GENERATOR:
            return WrappedHook(extension=extension, hook=partial(made, extension), is_async=False)
        if kind == _ASYNC_GENERATOR:
            return WrappedHook(extension=extension, hook=partial(made, extension), is_async=True)
        return super().get_hook(extension)  # a plain callable: Strawberry's own wrapping


def _classified(cls: type, name: str, default: Any) -> tuple[int, Any]:
    """How Strawberry's ``get_hook`` treats hook ``name`` of extension class ``cls``."""
    hook = getattr(cls, name)
    if hook is default:
        return _NO_HOOK, None
    if inspect.isgeneratorfunction(hook):
        return _GENERATOR, contextlib.contextmanager(hook)
    if inspect.isasyncgenfunction(hook):
        return _ASYNC_GENERATOR, contextlib.asynccontextmanager(hook)
    return _OTHER, None


class _Operation(_ClassifiedHooks, OperationContextManager):
    pass


class _Validation(_ClassifiedHooks, ValidationContextManager):
    pass


class _Parsing(_ClassifiedHooks, ParsingContextManager):
    pass


class _Executing(_ClassifiedHooks, ExecutingContextManager):
    pass


class ExtensionsRunner(SchemaExtensionsRunner):
    """Strawberry's runner of a schema's extensions, their hooks classified once per class
    (``Schema.create_extensions_runner`` makes it)."""

    def operation(self) -> OperationContextManager:
        return _Operation(self.extensions)

    def validation(self) -> ValidationContextManager:
        return _Validation(self.extensions)

    def parsing(self) -> ParsingContextManager:
        return _Parsing(self.extensions)

    def executing(self) -> ExecutingContextManager:
        return _Executing(self.extensions)


ContextT = TypeVar("ContextT")
RootT = TypeVar("RootT")

# Raised by ``send_pre_execution_error`` once it has closed the connection (4400): the
# operation is over, nothing more is sent.
OperationStreamClosed = _OperationStreamClosed


class TransportWsHandler(BaseGraphQLTransportWSHandler[ContextT, RootT], Generic[ContextT, RootT]):
    """Strawberry's graphql-transport-ws handler, with public names for the two answers its own
    ``run_operation`` gives a subscription's first result, for a subclass that runs the stream."""

    async def send_pre_execution_error(self, operation: Operation[ContextT, RootT], result: PreExecutionError) -> None:
        """An ``error`` message for the operation; or, for a document that does not parse or an
        operation that cannot be chosen, close the connection (4400) and raise
        ``OperationStreamClosed``."""
        await self._handle_pre_execution_error(operation, result)

    async def reject_incremental_delivery(self, operation: Operation[ContextT, RootT]) -> None:
        """An ``error`` message: ``@defer``/``@stream`` frames have no graphql-transport-ws form."""
        await self._reject_incremental_delivery(operation)
