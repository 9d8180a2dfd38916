"""What callers see when something fails.

- Malformed or invalid documents: GraphQL's own errors, unchanged.
- Errors we raise on purpose (``GraphQLError`` with an ``extensions.code``; permission errors,
  code FORBIDDEN): unchanged.
- A ``DomainError`` escaping a query (a bad cursor, say): its message and code.
- Anything else is a bug: logged with the request id and the traceback, and shown only as
  "Internal server error" with the request id, so nothing internal leaks.
"""

from __future__ import annotations

import structlog
from graphql import GraphQLError
from strawberry import Schema as StrawberrySchema
from strawberry.extensions import MaskErrors
from strawberry.types import ExecutionContext

from domain.errors import DomainError

log = structlog.get_logger(__name__)

INTERNAL_MESSAGE = "Internal server error"


def is_unexpected(error: GraphQLError) -> bool:
    original = error.original_error
    return original is not None and not isinstance(original, (GraphQLError, DomainError))


def _request_id(execution_context: ExecutionContext | None) -> str | None:
    context = getattr(execution_context, "context", None)
    return getattr(context, "request_id", None)


class Schema(StrawberrySchema):
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


class MaskUnexpectedErrors(MaskErrors):
    def __init__(self) -> None:
        super().__init__(should_mask_error=self._rewrites, error_message=INTERNAL_MESSAGE)

    def _process_result(self, result: object) -> None:
        # Strawberry's version first asks a runtime-checkable Protocol, which costs more than
        # sending the result does; that is paid per subscriber for every subscription event.
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)  # type: ignore[attr-defined]

    @staticmethod
    def _rewrites(error: GraphQLError) -> bool:
        return error.original_error is not None and not isinstance(error.original_error, GraphQLError)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if isinstance(original, DomainError):
            message, extensions = original.message, {"code": original.code, "field": original.field}
        else:
            request_id = _request_id(self.execution_context)
            message = f"{INTERNAL_MESSAGE} (request id {request_id})" if request_id else INTERNAL_MESSAGE
            extensions = {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}
        return GraphQLError(
            message=message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            original_error=None,
            extensions=extensions,
        )
