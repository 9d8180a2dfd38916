"""The typed context every resolver gets, built in one place: ``get_context``.

Strawberry builds a context once per HTTP request but only once per WebSocket *connection*,
which may run many operations, concurrently and for hours. So the dataloaders are not plain
attributes: ``loaders(info)`` hands out one set per operation, and the
``OperationLoaders`` extension drops that set when the operation ends.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from strawberry.extensions import SchemaExtension
from strawberry.types import Info as StrawberryInfo

from domain.auth import Role
from domain.models import ApiToken
from domain.ports import Adapters
from domain.queries import ReadModel
from graphql_api.auth import resolve_role
from graphql_api.loaders import Loaders
from graphql_api.strawberry_compat import operation_of

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.websockets import WebSocket

    from bootstrap import Container
    from graphql_api.observability import ApiMetrics
    from graphql_api.planned_http import PlannedOperation


@dataclass
class Context:
    request: Request | WebSocket
    response: Any
    container: Container
    request_id: str
    # None until a WebSocket connection is acknowledged (or for the GraphiQL page itself).
    role: Role | None = None
    token: ApiToken | None = None
    # Set by Strawberry from the graphql-transport-ws ``connection_init`` payload.
    connection_params: dict[str, Any] | None = None
    # Whether query operations may run on the compiled read plan (``plan.py``).
    read_plan: bool = True
    # The app's metrics, where the plan's fallbacks are counted (None: an app without them).
    metrics: ApiMetrics | None = None
    # Left by the executor when the plan answered the operation: the view keeps it for the next
    # request with the same document (``planned_http``).
    planned: PlannedOperation | None = None
    _loaders: dict[int, tuple[object, Loaders]] = field(default_factory=dict, repr=False)

    @property
    def adapters(self) -> Adapters:
        return self.container.adapters

    @property
    def read_model(self) -> ReadModel:
        return self.container.read_model

    @property
    def base_url(self) -> str:
        """Where clients reach the API, for absolute links: ``VKCP_PUBLIC_URL``, else this
        request's own scheme and host. (uvicorn applies ``X-Forwarded-Proto`` from trusted
        proxies; ``X-Forwarded-Host`` is not trusted: behind a proxy that changes the host,
        set ``VKCP_PUBLIC_URL``.)"""
        configured = self.container.settings.public_url
        if configured:
            return configured
        url = self.request.base_url  # with the app's root path
        scheme = {"ws": "http", "wss": "https"}.get(url.scheme, url.scheme)
        return str(url.replace(scheme=scheme)).rstrip("/")

    def loaders(self, info: StrawberryInfo) -> Loaders:
        """The loaders of the operation ``info`` belongs to."""
        operation = operation_of(info)
        entry = self._loaders.get(id(operation))
        # The node is kept in the entry, so its id cannot be reused while the entry lives.
        if entry is None or entry[0] is not operation:
            entry = (operation, Loaders(self.read_model))
            self._loaders[id(operation)] = entry
        return entry[1]

    def drop_loaders(self, operations: Iterator[object]) -> None:
        for operation in operations:
            entry = self._loaders.get(id(operation))
            if entry is not None and entry[0] is operation:
                del self._loaders[id(operation)]


Info = StrawberryInfo[Context, None]


class OperationLoaders(SchemaExtension):
    """Frees an operation's loaders when it ends (matters on long WebSocket connections)."""

    def on_operation(self) -> Iterator[None]:
        yield
        context = self.execution_context.context
        document = self.execution_context.graphql_document
        if isinstance(context, Context) and document is not None:
            context.drop_loaders(iter(document.definitions))


def new_request_id(headers: Any) -> str:
    """The caller's ``X-Request-ID`` when it sent a sane one, else a fresh id."""
    given = headers.get("x-request-id") if headers is not None else None
    if given and len(given) <= 64 and given.isprintable():
        return given
    return os.urandom(8).hex()  # 16 hex digits, as uuid4().hex[:16] was, without making a UUID


async def get_context(container: Container, request: Request | WebSocket, response: Any) -> Context:
    """The one place a context is made: request id, caller's role (HTTP) and the container.

    WebSocket connections get their role later, from ``connection_init`` (``on_ws_connect``).
    """
    context = Context(
        request=request, response=response, container=container, request_id=new_request_id(request.headers),
        read_plan=container.settings.read_plan,
    )
    is_websocket = request.scope["type"] == "websocket"
    if not container.settings.auth:
        context.role = Role.ADMIN
    elif not is_websocket:
        found = await resolve_role(container.adapters, container.read_model, request.headers.get("authorization"))
        if found is not None:
            context.role, context.token = found
    return context
