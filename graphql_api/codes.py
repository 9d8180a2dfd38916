"""Every error code a client can see, in one place.

A code is in ``errors[].extensions.code`` of a GraphQL response (over HTTP and WebSocket) and in
``UserError.code`` of a mutation's payload. The GraphQL codes are Apollo Server's, which GraphQL
clients already know; the rest are this service's own. The schema publishes the list as the
``ErrorCode`` enum, so clients can switch on it exhaustively.

Which code a failure gets:
- the document does not parse: GRAPHQL_PARSE_FAILED; it does not validate against the schema
  (unknown field, wrong argument literal, too deep, too many aliases): GRAPHQL_VALIDATION_FAILED;
  ``operationName`` names no operation of the document: OPERATION_RESOLUTION_FAILURE;
- a variable, an argument's value or a cursor is wrong (out of range, malformed, too long):
  BAD_USER_INPUT (a DateTime literal its scalar refuses too, though found while validating);
- a domain error (``domain.errors``): the code ``code_of`` maps its class to;
- the request itself cannot be a GraphQL request (not JSON, no query, too large, ...): the code
  of its HTTP status (``HTTP_STATUS_CODES``);
- anything else is a bug: INTERNAL_SERVER_ERROR, with a request id.
"""

from __future__ import annotations

import enum

import strawberry

from domain import errors
from domain.alert_model import InvalidChannel
from domain.keywords import DuplicateKeyword


@strawberry.enum(
    name="ErrorCode",
    description="Why something failed: `errors[].extensions.code` of a response, and `UserError.code` "
    "of a mutation's payload. GraphQL's own codes are Apollo Server's.",
)
class ErrorCode(enum.Enum):
    value: str  # what strawberry.enum_value leaves as a member's value (mypy sees its definition)

    # GraphQL: the request could not run at all.
    GRAPHQL_PARSE_FAILED = strawberry.enum_value(
        "GRAPHQL_PARSE_FAILED", description="The document is not valid GraphQL syntax."
    )
    GRAPHQL_VALIDATION_FAILED = strawberry.enum_value(
        "GRAPHQL_VALIDATION_FAILED",
        description="The document does not fit the schema (unknown field, wrong literal) or exceeds a limit "
        "(depth, aliases).",
    )
    OPERATION_RESOLUTION_FAILURE = strawberry.enum_value(
        "OPERATION_RESOLUTION_FAILURE",
        description="Which operation to run is unclear: `operationName` names none of the document's operations, "
        "or the document has several and none was named.",
    )
    PERSISTED_QUERY_NOT_SUPPORTED = strawberry.enum_value(
        "PERSISTED_QUERY_NOT_SUPPORTED",
        description="A persisted-query hash was sent without the query; send the query itself "
        "(no persisted queries here).",
    )
    BAD_USER_INPUT = strawberry.enum_value(
        "BAD_USER_INPUT",
        description="A variable, argument or input value is wrong: wrong type, out of range, malformed cursor, "
        "too long. `extensions.field` / `UserError.field` names it when known.",
    )
    # Who is asking.
    UNAUTHENTICATED = strawberry.enum_value(
        "UNAUTHENTICATED", description="No API token, or not a valid one (HTTP 401)."
    )
    FORBIDDEN = strawberry.enum_value("FORBIDDEN", description="The token's role may not do this.")
    # What was asked for.
    NOT_FOUND = strawberry.enum_value("NOT_FOUND", description="No such object: an unknown or malformed id.")
    INVALID_REFERENCE = strawberry.enum_value(
        "INVALID_REFERENCE", description="A community reference that is neither an id, a screen name nor a VK link."
    )
    CONFLICT = strawberry.enum_value("CONFLICT", description="The change contradicts the stored state.")
    DUPLICATE = strawberry.enum_value("DUPLICATE", description="A keyword that is already stored (or given twice).")
    INVALID_CHANNEL = strawberry.enum_value(
        "INVALID_CHANNEL",
        description="An alert channel URL that is no webhook and no Apprise URL this server can send to.",
    )
    # VK.
    VK_ERROR = strawberry.enum_value("VK_ERROR", description="VK answered with an error.")
    VK_ACCESS_DENIED = strawberry.enum_value(
        "VK_ACCESS_DENIED", description="The community or post is private, closed, blocked or deleted."
    )
    VK_COMMENTS_CLOSED = strawberry.enum_value("VK_COMMENTS_CLOSED", description="The post's comments are closed.")
    VK_NOT_FOUND = strawberry.enum_value("VK_NOT_FOUND", description="VK knows no such community or post.")
    VK_RATE_LIMITED = strawberry.enum_value(
        "VK_RATE_LIMITED", description="Every VK token is resting (quota, captcha): try again later."
    )
    VK_AUTH_FAILED = strawberry.enum_value("VK_AUTH_FAILED", description="VK rejected every configured token.")
    VK_UNAVAILABLE = strawberry.enum_value(
        "VK_UNAVAILABLE", description="VK kept failing, or no VK token is configured."
    )
    # HTTP and the service.
    BAD_REQUEST = strawberry.enum_value(
        "BAD_REQUEST", description="Not a GraphQL request: not JSON, no query, a subscription over HTTP (HTTP 400)."
    )
    METHOD_NOT_ALLOWED = strawberry.enum_value("METHOD_NOT_ALLOWED", description="A mutation sent with GET (HTTP 405).")
    NOT_ACCEPTABLE = strawberry.enum_value(
        "NOT_ACCEPTABLE", description="`Accept` allows no media type we send (HTTP 406)."
    )
    PAYLOAD_TOO_LARGE = strawberry.enum_value(
        "PAYLOAD_TOO_LARGE", description="The request body is too large (HTTP 413)."
    )
    TOO_MANY_SUBSCRIPTIONS = strawberry.enum_value(
        "TOO_MANY_SUBSCRIPTIONS", description="The WebSocket connection already runs as many operations as it may."
    )
    LINK_INVALID = strawberry.enum_value("LINK_INVALID", description="An export download link was changed (HTTP 403).")
    LINK_EXPIRED = strawberry.enum_value("LINK_EXPIRED", description="An export download link has expired (HTTP 403).")
    TIMEOUT = strawberry.enum_value("TIMEOUT", description="The request ran too long and was stopped (HTTP 504).")
    SERVICE_UNAVAILABLE = strawberry.enum_value(
        "SERVICE_UNAVAILABLE",
        description="A dependency (database, Redis) is away; retry later (HTTP 503 with `Retry-After` when nothing "
        "could be answered).",
    )
    INTERNAL_SERVER_ERROR = strawberry.enum_value(
        "INTERNAL_SERVER_ERROR", description="A bug: logged with the request id, which the message gives."
    )


# Domain errors by class; the most specific class of an error wins (``code_of`` walks its MRO).
_DOMAIN_CODES: dict[type[errors.DomainError], ErrorCode] = {
    errors.NotFound: ErrorCode.NOT_FOUND,
    errors.InvalidInput: ErrorCode.BAD_USER_INPUT,
    errors.InvalidReference: ErrorCode.INVALID_REFERENCE,
    errors.Conflict: ErrorCode.CONFLICT,
    DuplicateKeyword: ErrorCode.DUPLICATE,
    InvalidChannel: ErrorCode.INVALID_CHANNEL,
    errors.Unavailable: ErrorCode.SERVICE_UNAVAILABLE,
    errors.VkError: ErrorCode.VK_ERROR,
    errors.VkAccessDenied: ErrorCode.VK_ACCESS_DENIED,
    errors.VkCommentsClosed: ErrorCode.VK_COMMENTS_CLOSED,
    errors.VkNotFound: ErrorCode.VK_NOT_FOUND,
    errors.VkRateLimited: ErrorCode.VK_RATE_LIMITED,
    errors.VkAuthFailed: ErrorCode.VK_AUTH_FAILED,
    errors.VkUnavailable: ErrorCode.VK_UNAVAILABLE,
}

# Errors the HTTP layer answers before or instead of GraphQL, by status.
HTTP_STATUS_CODES: dict[int, ErrorCode] = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.UNAUTHENTICATED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    406: ErrorCode.NOT_ACCEPTABLE,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    500: ErrorCode.INTERNAL_SERVER_ERROR,
    503: ErrorCode.SERVICE_UNAVAILABLE,
    504: ErrorCode.TIMEOUT,
}


def code_of(error: errors.DomainError) -> ErrorCode:
    """The code a domain error shows clients. A domain error of no listed class is a bug."""
    for cls in type(error).__mro__:
        if cls in _DOMAIN_CODES:
            return _DOMAIN_CODES[cls]
    return ErrorCode.INTERNAL_SERVER_ERROR


def http_code(status: int) -> ErrorCode:
    return HTTP_STATUS_CODES.get(status, ErrorCode.BAD_REQUEST if status < 500 else ErrorCode.INTERNAL_SERVER_ERROR)
