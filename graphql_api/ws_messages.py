"""What a graphql-transport-ws message must look like before Strawberry's handler reads it.

The handler indexes messages as it finds them: a ``subscribe`` whose payload is a string or an
array, a message that is not an object, or an id that is not a string raised TypeError inside
the connection, which then dropped without a close frame; a ``query`` or ``variables`` of the
wrong type failed later, inside the operation, and the client heard nothing. The protocol's
answer to any malformed message is to close with 4400 and a reason; ``violation`` gives the
reason (short: a close reason holds at most 123 bytes).
"""

from __future__ import annotations

from typing import Any

_PAYLOAD_FIELDS = (
    ("variables", dict, "an object"), ("extensions", dict, "an object"), ("operationName", str, "a string")
)


def violation(message: Any) -> str | None:
    """Why ``message`` is not a valid graphql-transport-ws message; None when it is one."""
    if not isinstance(message, dict):
        return "A message must be a JSON object"
    kind = message.get("type")
    if not isinstance(kind, str):
        return "A message needs a string `type`"
    if kind in ("subscribe", "complete") and not (isinstance(message.get("id"), str) and message["id"]):
        return f"A {kind} message needs a non-empty string `id`"
    payload = message.get("payload")
    if kind == "subscribe":
        if not isinstance(payload, dict):
            return "A subscribe message needs a `payload` object"
        if not isinstance(payload.get("query"), str):
            return "A subscribe payload needs a string `query`"
        for name, kind_of, described in _PAYLOAD_FIELDS:
            if payload.get(name) is not None and not isinstance(payload[name], kind_of):
                return f"`payload.{name}` must be {described}"
    elif kind in ("ping", "pong") and payload is not None and not isinstance(payload, dict):
        return f"A {kind} payload must be an object"
    return None
