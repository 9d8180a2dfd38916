"""What callers see when something fails: every error carries ``extensions.code``
(``graphql_api.codes`` lists them).

- A document that does not parse: GRAPHQL_PARSE_FAILED; one that does not validate:
  GRAPHQL_VALIDATION_FAILED; variables that cannot be coerced: BAD_USER_INPUT. graphql-core
  gives these no code; ``CodedErrors`` adds it by the phase that failed.
- Errors we raise on purpose (``GraphQLError`` with a code: permission errors, a DateTime or a
  page size out of range): unchanged.
- A ``DomainError`` escaping a query or subscription (a bad cursor, an unknown task): its
  message, its code and the field it is about.
- Anything else is a bug: logged with the request id and the traceback, and shown only as
  "Internal server error" with the request id, so nothing internal leaks.

A mutation's expected failure is no GraphQL error: ``@user_errors_in`` turns the
``DomainError`` it raises into ``UserError``s in its payload's ``errors`` (an outage excepted).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterator
from typing import ParamSpec, TypeVar

import strawberry
import structlog
from graphql import GraphQLError, GraphQLSyntaxError
from strawberry import Schema as StrawberrySchema
from strawberry.extensions import SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.schema.exceptions import CannotGetOperationTypeError
from strawberry.types import ExecutionContext

from domain.errors import DomainError, Unavailable
from domain.rules import QuerySyntaxError
from graphql_api.codes import ErrorCode, code_of
from graphql_api.strawberry_compat import ExtensionsRunner, MaskErrorsOfEveryResult

log = structlog.get_logger(__name__)

INTERNAL_MESSAGE = "Internal server error"

P = ParamSpec("P")
Payload = TypeVar("Payload")


@strawberry.type(
    description="An expected failure of a mutation (bad reference, unknown id, invalid value). "
    "Mutations return these in `errors` instead of failing the request."
)
class UserError:
    code: ErrorCode = strawberry.field(
        description="Machine-readable reason, e.g. NOT_FOUND, BAD_USER_INPUT, INVALID_REFERENCE, DUPLICATE, "
        "VK_ACCESS_DENIED, VK_RATE_LIMITED, VK_UNAVAILABLE."
    )
    message: str = strawberry.field(description="What went wrong, for people.")
    field: str | None = strawberry.field(
        description="The input field the error is about (e.g. `ref`, `id`, `maxPosts`), when there is one."
    )


def user_errors(error: DomainError) -> list[UserError]:
    """An expected failure, for a payload's (or a bulk item's) ``errors``. An outage is not one:
    nothing was done, so it surfaces as a GraphQL error with code SERVICE_UNAVAILABLE (HTTP 503),
    which GraphQL clients' retry logic recognises."""
    if isinstance(error, Unavailable):
        raise error
    return [UserError(code=code_of(error), message=error.message, field=error.field)]


def user_errors_in(
    payload: Callable[..., Payload], **failed: object
) -> Callable[[Callable[P, Awaitable[Payload]]], Callable[P, Awaitable[Payload]]]:
    """A mutation resolver whose ``DomainError`` becomes ``payload(**failed, errors=[...])``:
    ``@user_errors_in(GroupPayload, group=None)``. The resolver returns its payload on success;
    Strawberry reads its arguments and return type through ``functools.wraps``."""

    def decorate(resolver: Callable[P, Awaitable[Payload]]) -> Callable[P, Awaitable[Payload]]:
        @functools.wraps(resolver)
        async def resolve(*args: P.args, **kwargs: P.kwargs) -> Payload:
            try:
                return await resolver(*args, **kwargs)
            except DomainError as e:
                return payload(**failed, errors=user_errors(e))

        return resolve

    return decorate


def is_unexpected(error: GraphQLError) -> bool:
    original = error.original_error
    return original is not None and not isinstance(original, (GraphQLError, DomainError, CannotGetOperationTypeError))


def _request_id(execution_context: ExecutionContext | None) -> str | None:
    context = getattr(execution_context, "context", None)
    return getattr(context, "request_id", None)


def _code(error: GraphQLError) -> object:
    return (error.extensions or {}).get("code")


def with_code(error: GraphQLError, code: ErrorCode) -> GraphQLError:
    """``error`` as a plain ``GraphQLError`` with ``code``, unless it has a code already.

    A new error, not the old one changed: error objects may be shared (parsed and validated
    documents are cached), and a syntax error's own class makes Strawberry close a WebSocket
    (4400) where an ``error`` message with the code is the answer (the connection's other
    subscriptions live on).
    """
    if _code(error) is not None:
        return error
    return GraphQLError(
        error.message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=error.original_error,
        extensions={**(error.extensions or {}), "code": code.value},
    )


class Schema(StrawberrySchema):
    def create_extensions_runner(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension]
    ) -> SchemaExtensionsRunner:
        return ExtensionsRunner(execution_context=execution_context, extensions=extensions)

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        # Only bugs are logged: bad queries and permission refusals are the caller's business.
        for error in errors:
            if is_unexpected(error):
                log.error(
                    "graphql.unexpected_error",
                    request_id=_request_id(execution_context),
                    operation=getattr(execution_context, "operation_name", None),
                    path=error.path,
                    exc_info=error.original_error,
                )


def _uncoded(error: GraphQLError) -> ErrorCode:
    """The code of an error graphql-core made (validation errors have theirs by now)."""
    if isinstance(error, GraphQLSyntaxError):
        return ErrorCode.GRAPHQL_PARSE_FAILED
    if error.path is None:  # reported before anything ran: variables that could not be coerced
        return ErrorCode.BAD_USER_INPUT
    return ErrorCode.INTERNAL_SERVER_ERROR  # a value the schema cannot represent: a bug


class CodedErrors(MaskErrorsOfEveryResult):
    """Gives every error of a result its ``extensions.code``.

    Validation errors get theirs as validation ends (nothing else tells them from the errors of
    variables graphql-core could not coerce, which get BAD_USER_INPUT); syntax errors have their
    own class. As each result leaves, a ``DomainError`` becomes its message and code, and any
    other exception is masked as INTERNAL_SERVER_ERROR.
    """

    def __init__(self) -> None:
        super().__init__(should_mask_error=self._rewrites, error_message=INTERNAL_MESSAGE)

    def on_validate(self) -> Iterator[None]:
        yield
        context = self.execution_context
        if context.pre_execution_errors:  # the list the result is made of (and the validation
            # cache's): its items are replaced in place, which only ever adds a code
            context.pre_execution_errors[:] = [
                with_code(e, ErrorCode.GRAPHQL_VALIDATION_FAILED) for e in context.pre_execution_errors
            ]

    def after_masking(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return [_with_its_code(error) for error in errors]

    @staticmethod
    def _rewrites(error: GraphQLError) -> bool:
        return _rewritten(error)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        return _anonymised(error, _request_id(self.execution_context))


def coded_error(error: GraphQLError, request_id: str | None) -> GraphQLError:
    """``error`` as ``CodedErrors`` lets it leave: for a result made without Strawberry's
    extensions (``planned_http``), which must read exactly as one made with them."""
    if _rewritten(error):
        error = _anonymised(error, request_id)
    return _with_its_code(error)


def _with_its_code(error: GraphQLError) -> GraphQLError:
    return error if _code(error) is not None else with_code(error, _uncoded(error))


def _rewritten(error: GraphQLError) -> bool:
    return error.original_error is not None and not isinstance(error.original_error, GraphQLError)


def _anonymised(error: GraphQLError, request_id: str | None) -> GraphQLError:
    """A ``DomainError`` as its message and code; any other exception masked, with the request's id."""
    original = error.original_error
    if isinstance(original, DomainError):
        message = original.message
        extensions: dict[str, object] = {"code": code_of(original).value, "field": original.field}
        if isinstance(original, QuerySyntaxError):  # where in the rule-language query
            extensions["query"] = {
                "line": original.line, "column": original.column, "expected": list(original.expected)
            }
    elif isinstance(original, CannotGetOperationTypeError):  # a subscription's operationName
        message = original.as_http_error_reason()
        extensions = {"code": ErrorCode.OPERATION_RESOLUTION_FAILURE.value}
    else:
        message = f"{INTERNAL_MESSAGE} (request id {request_id})" if request_id else INTERNAL_MESSAGE
        extensions = {"code": ErrorCode.INTERNAL_SERVER_ERROR.value, "requestId": request_id}
    return GraphQLError(
        message=message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions=extensions,
    )
